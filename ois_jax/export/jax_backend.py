"""Graphs -> serialised jax.export (StableHLO) artifacts for cpu, cuda and tpu at once.

Each artifact NAME.jax is `jax.export.export(...).serialize()` of `fn(param_leaves, *inputs)`;
the parameters are not inside but in one params.npz beside it (keys in the manifest's
`params.names` order), so the program stays small and compiles fast, and both artifacts share one
copy of the weights. The ViT self-attention keeps its per-platform choice (blocked on CPU, plain
on accelerators), which jax.export lowers for every platform into one module.
`ois_jax.export.jax_runtime` runs the result without the model code.
"""

import os

import jax
import numpy as np

from ois_jax.export import manifest as mf
from ois_jax.export.graphs import Graph

PLATFORMS = ("cpu", "cuda", "tpu")
PARAMS_FILE = "params.npz"


def versions() -> dict:
  return {"jax": jax.__version__, "platforms": list(PLATFORMS)}


def param_names(params: dict) -> list[str]:
  """'/'-joined key paths of the parameter leaves, in jax.tree order."""
  paths, _ = zip(*jax.tree_util.tree_flatten_with_path(params)[0])
  return ["/".join(str(getattr(k, "key", k)) for k in path) for path in paths]


def save_params(params: dict, directory: str) -> dict:
  """DIRECTORY/params.npz (uncompressed: it loads at disk speed); returns its manifest entry."""
  names = param_names(params)
  path = os.path.join(directory, PARAMS_FILE)
  np.savez(path, **{name: np.asarray(leaf) for name, leaf in zip(names, jax.tree.leaves(params))})
  return {"file": PARAMS_FILE, "sha256": mf.sha256(path), "names": names}


def export(graph: Graph, params: dict, directory: str) -> dict:
  """Write `graph` as DIRECTORY/NAME.jax; returns its manifest artifact entry."""
  treedef = jax.tree.structure(params)

  def flat_fn(leaves, *inputs):
    return graph.fn(jax.tree.unflatten(treedef, leaves), *inputs)

  batch, = jax.export.symbolic_shape(mf.BATCH_DIM)
  leaves = [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in jax.tree.leaves(params)]
  exported = jax.export.export(jax.jit(flat_fn), platforms=PLATFORMS)(leaves, *graph.input_structs(batch))
  path = os.path.join(directory, f"{graph.name}.jax")
  with open(path, "wb") as f:
    f.write(exported.serialize())
  return {"file": os.path.basename(path), "sha256": mf.sha256(path),
          "calling_convention_version": exported.calling_convention_version,
          "inputs": list(graph.inputs), "outputs": list(graph.outputs)}
