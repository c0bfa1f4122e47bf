"""Device mesh, logical axis rules and NamedShardings for data-parallel + FSDP training.

The model never names mesh axes. Parameters get logical axis names here (`embed` on one
dimension of each large matrix, see `param_logical_axes`); `config.train.logical_axis_rules`
maps logical names to mesh axes, e.g. `("embed", "fsdp")` shards those dimensions over the
`fsdp` axis and `("batch", ("data", "fsdp"))` splits the batch over every device.
The same code runs on 1 device (every spec collapses to replication) and on N.
"""

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ois_jax.errors import ConfigError


def make_mesh(config, devices=None) -> Mesh:
  """Mesh of shape `train.mesh_shape` (one -1 takes the remaining devices) over `train.mesh_axes`."""
  devices = list(jax.devices() if devices is None else devices)
  axes = tuple(config.train.mesh_axes)
  shape = [int(s) for s in config.train.mesh_shape]
  if len(shape) != len(axes):
    raise ConfigError(f"train.mesh_shape {tuple(shape)} and train.mesh_axes {axes} differ in length")
  known = math.prod(s for s in shape if s != -1)
  if shape.count(-1) > 1 or len(devices) % known:
    raise ConfigError(f"train.mesh_shape {tuple(shape)} does not fit {len(devices)} devices")
  shape = [len(devices) // known if s == -1 else s for s in shape]
  if math.prod(shape) != len(devices):
    raise ConfigError(f"train.mesh_shape {tuple(shape)} needs {math.prod(shape)} devices, "
                      f"found {len(devices)}")
  return Mesh(np.asarray(devices).reshape(shape), axes)


def _rules(config) -> dict:
  return {name: target for name, target in config.train.logical_axis_rules}


def logical_to_spec(logical_axes, config, mesh: Mesh) -> P:
  """PartitionSpec for a tuple of logical names (None = replicated dimension).

  Mesh axes of size 1 are dropped, and a mesh axis is used at most once per array.
  """
  rules, used, spec = _rules(config), set(), []
  for name in logical_axes:
    target = rules.get(name) if name is not None else None
    targets = (target,) if isinstance(target, str) else tuple(target or ())
    targets = tuple(a for a in targets if mesh.shape.get(a, 1) > 1 and a not in used)
    used.update(targets)
    spec.append(None if not targets else targets[0] if len(targets) == 1 else targets)
  return P(*spec)


def _mesh_size(target, mesh: Mesh) -> int:
  targets = (target,) if isinstance(target, str) else tuple(target or ())
  return math.prod(mesh.shape.get(a, 1) for a in targets)


def param_logical_axes(abstract_params, config, mesh: Mesh):
  """Logical axis names per parameter: `embed` on the largest dimension that splits evenly.

  OUR CHOICE (documented in docs/training.md): the Flax model carries no partitioning
  annotations, so every parameter with at least `train.fsdp_min_size` elements names its largest
  dimension divisible by the size of the mesh axes `embed` maps to; everything else (biases,
  norms, small kernels) is replicated.
  """
  shard_size = _mesh_size(_rules(config).get("embed"), mesh)
  min_size = int(config.train.get("fsdp_min_size", 2 ** 14))

  def axes_for(leaf):
    names = [None] * len(leaf.shape)
    if shard_size > 1 and math.prod(leaf.shape) >= min_size:
      candidates = [(d, i) for i, d in enumerate(leaf.shape) if d % shard_size == 0]
      if candidates:
        names[max(candidates)[1]] = "embed"
    return tuple(names)

  return jax.tree.map(axes_for, abstract_params)


def param_shardings(abstract_params, config, mesh: Mesh):
  axes = param_logical_axes(abstract_params, config, mesh)
  return jax.tree.map(lambda a: NamedSharding(mesh, logical_to_spec(a, config, mesh)), axes,
                      is_leaf=lambda x: isinstance(x, tuple))


def _path_key(path) -> tuple:
  return tuple(str(k) for k in path)


def state_shardings(abstract_state, config, mesh: Mesh):
  """Shardings of a train state dict {'step', 'params', 'opt_state'}.

  Optimiser moments mirror the parameters: an opt-state leaf whose key path ends with a
  parameter's key path (and has its shape) takes that parameter's sharding.
  """
  params_sharding = param_shardings(abstract_state["params"], config, mesh)
  by_path = {}
  for (path, leaf), sharding in zip(jax.tree_util.tree_flatten_with_path(abstract_state["params"])[0],
                                    jax.tree.leaves(params_sharding)):
    by_path[_path_key(path)] = (leaf.shape, sharding)
  replicated = NamedSharding(mesh, P())

  def for_opt_leaf(path, leaf):
    key = _path_key(path)
    for start in range(len(key)):
      match = by_path.get(key[start:])
      if match is not None and match[0] == leaf.shape:
        return match[1]
    return replicated

  opt_sharding = jax.tree_util.tree_map_with_path(for_opt_leaf, abstract_state["opt_state"])
  out = {k: jax.tree.map(lambda _: replicated, v) for k, v in abstract_state.items()}
  out.update(params=params_sharding, opt_state=opt_sharding)
  return out


def batch_sharding(config, mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the mesh axes `batch` maps to."""
  return NamedSharding(mesh, logical_to_spec(("batch",), config, mesh))


def batch_shards(config, mesh: Mesh) -> int:
  """How many ways the batch dimension is split."""
  spec = logical_to_spec(("batch",), config, mesh)
  return _mesh_size(spec[0], mesh) if len(spec) else 1


def shard_batch(batch: dict, config, mesh: Mesh) -> dict:
  """Host batch (this process's share; a nested dict of arrays) -> global jax.Arrays sharded
  over the batch axes."""
  sharding = batch_sharding(config, mesh)

  def put(value):
    value = np.asarray(value)
    spec = P(*(tuple(sharding.spec) + (None,) * (value.ndim - 1)))
    return jax.make_array_from_process_local_data(NamedSharding(mesh, spec), value)

  return jax.tree.map(put, batch)
