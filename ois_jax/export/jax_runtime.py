"""Run a jax.export folder with JAX alone: no Flax, no ois_jax model code.

    from ois_jax.export.jax_runtime import JaxExport
    exported = JaxExport("export_dir")                     # checks the manifest and the files
    state = exported("encoder", image)                     # {name: array}, manifest order
    logits = exported("decoder", *state.values(), coords, valid, prev, has_prev)["logits"]

Inputs are NumPy or JAX arrays with any batch size; the pre- and post-processing the manifest
describes are the caller's (`examples/onnx_segment.py` implements them in NumPy). This module
imports only jax, numpy and `ois_jax.export.manifest`, so it runs where the model code is not
installed beside it.
"""

import jax
import numpy as np

from ois_jax.errors import ExportError
from ois_jax.export import manifest as mf


class JaxExport:
  """The artifacts of one jax.export folder, deserialised, with their parameters on the device."""

  def __init__(self, directory: str):
    self.directory = directory
    self.manifest = mf.read(directory, backend="jax")
    params_path = mf.check_file(directory, self.manifest["params"], "parameter file")
    names = self.manifest["params"]["names"]
    with np.load(params_path) as npz:
      missing = sorted(set(names) - set(npz.files))
      if missing:
        raise ExportError(f"{params_path}: lacks {len(missing)} parameters the manifest lists, "
                          f"e.g. {missing[0]}")
      self._params = [jax.device_put(npz[name]) for name in names]
    self._fns, self._entries = {}, {}
    for name, entry in self.manifest["artifacts"].items():
      path = mf.check_file(directory, entry, f"{name} artifact")
      with open(path, "rb") as f:
        try:
          exported = jax.export.deserialize(bytearray(f.read()))
        except Exception as e:  # flatbuffers / version errors come in many types
          raise ExportError(f"{path}: cannot deserialise ({type(e).__name__}: {e})") from None
      _check(path, exported, entry, self._params)
      self._fns[name] = jax.jit(exported.call)
      self._entries[name] = entry

  @property
  def names(self) -> list[str]:
    return list(self._fns)

  def __call__(self, name: str, *inputs) -> dict[str, np.ndarray]:
    """Run artifact `name` on its inputs (manifest order); returns {output name: array}."""
    if name not in self._fns:
      raise ExportError(f"{self.directory}: no artifact {name!r} (has {self.names})")
    entry = self._entries[name]
    if len(inputs) != len(entry["inputs"]):
      raise ExportError(f"{name} takes {len(entry['inputs'])} inputs "
                        f"({[t['name'] for t in entry['inputs']]}), got {len(inputs)}")
    outputs = self._fns[name](self._params, *inputs)
    return {t["name"]: np.asarray(o) for t, o in zip(entry["outputs"], outputs)}


def _check(path: str, exported, entry: dict, params: list) -> None:
  """The deserialised avals against the manifest and the parameter file."""
  n = len(params)
  in_avals = exported.in_avals
  if len(in_avals) != n + len(entry["inputs"]):
    raise ExportError(f"{path} does not match the manifest: it takes {len(in_avals)} arrays, the "
                      f"manifest lists {n} parameters and {len(entry['inputs'])} inputs")
  for i, (aval, value) in enumerate(zip(in_avals[:n], params)):
    if tuple(aval.shape) != value.shape or aval.dtype != value.dtype:
      raise ExportError(f"{path} does not match the parameter file: parameter {i} is "
                        f"{aval.dtype}{list(aval.shape)} there, {value.dtype}{list(value.shape)} in the file")
  mf.check_signature(path, entry["inputs"], _tensors(entry["inputs"], in_avals[n:]))
  mf.check_signature(path, entry["outputs"], _tensors(entry["outputs"], exported.out_avals))


def _tensors(named: list[dict], avals) -> list[dict]:
  """Avals as TENSOR entries, named after the manifest (a jax.export artifact has no names)."""
  if len(named) != len(avals):
    return [{"name": f"#{i}", "shape": [str(d) for d in a.shape], "dtype": str(a.dtype)}
            for i, a in enumerate(avals)]
  return [{"name": t["name"], "shape": [d if isinstance(d, int) else str(d) for d in a.shape],
           "dtype": str(a.dtype)} for t, a in zip(named, avals)]
