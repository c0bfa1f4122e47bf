"""Multi-process (multi-host) training: connecting the processes, process-0-only output, and each
process's input-pipeline position in the checkpoints.

Every process runs the same `ois-jax train` command. With `train.distributed=True`,
`initialize(config)` connects them through `jax.distributed.initialize` before any device is
touched; from then on `jax.devices()` lists the devices of all processes, the mesh spans them,
each process feeds only its rows of the global batch (`sharding.shard_batch`, fed by
`data_pipelines.training.make_train_iterator`), and orbax writes and reads every checkpoint from
all processes together. Logs, metrics, files and the progress bar come from process 0 only.

The coordinator address, process count and process id come from `train.coordinator_address`,
`train.num_processes` and `train.process_id`, else from $JAX_COORDINATOR_ADDRESS,
$JAX_NUM_PROCESSES and $JAX_PROCESS_ID, else from JAX's own cluster detection (SLURM, Open MPI,
Kubernetes, Cloud TPU).
"""

import json
import os

import jax
import numpy as np

from ois_jax.errors import CheckpointError, DistributedError

# Config key -> environment variable used when the key is unset.
ENVIRONMENT = {"coordinator_address": "JAX_COORDINATOR_ADDRESS",
               "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


def _number(value, source: str) -> int | None:
  """An int setting; None when unset (-1 in the config, empty in the environment)."""
  if value is None or value == "" or value == -1:
    return None
  try:
    return int(value)
  except (TypeError, ValueError):
    raise DistributedError(f"{source} must be an integer, got {value!r}") from None


def settings(config) -> dict:
  """{'coordinator_address', 'num_processes', 'process_id'} from the config or the environment.

  Unset values are None (JAX then asks the cluster environment). Raises DistributedError for a
  malformed address or an id outside [0, num_processes).
  """
  t = config.train
  out = {}
  for key, env in ENVIRONMENT.items():
    value, source = t.get(key, None), f"train.{key}"
    if value in (None, "", -1):
      value, source = os.environ.get(env), f"${env}"
    if key == "coordinator_address":
      value = str(value).strip() if value else None
      if value is not None:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
          raise DistributedError(f"{source} must be HOST:PORT (e.g. 10.0.0.1:1234), got {value!r}")
    else:
      value = _number(value, source)
    out[key] = value
  count, index = out["num_processes"], out["process_id"]
  if count is not None and count < 1:
    raise DistributedError(f"the number of processes must be at least 1, got {count}")
  if index is not None and (index < 0 or (count is not None and index >= count)):
    raise DistributedError(f"process id {index} is outside [0, {count}) (train.process_id / "
                           f"$JAX_PROCESS_ID against train.num_processes / $JAX_NUM_PROCESSES)")
  return out


def _use_cpu_collectives() -> None:
  """Cross-process collectives on CPU devices go through gloo (older JAX had none by default)."""
  try:
    current = jax.config.jax_cpu_collectives_implementation
  except AttributeError:
    return
  if current in (None, "", "none"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")


def initialize(config) -> bool:
  """Connects this process to the others when `train.distributed` is set (before any device use).

  Returns whether training runs distributed. Calling it again in a connected process is a no-op.
  """
  if not config.train.get("distributed", False):
    return False
  connected = getattr(jax.distributed, "is_initialized", None)
  if connected is not None and connected():
    return True
  kwargs = settings(config)
  _use_cpu_collectives()
  timeout = int(config.train.get("distributed_timeout_s", 300))
  try:
    jax.distributed.initialize(**kwargs, initialization_timeout=timeout)
  except (RuntimeError, ValueError, TypeError) as e:
    where = kwargs["coordinator_address"] or "the cluster environment"
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DistributedError(f"cannot start distributed training with {where} "
                           f"(processes={kwargs['num_processes']}, id={kwargs['process_id']}): "
                           f"{first}") from e
  return True


def is_main() -> bool:
  """Whether this is process 0 (the one that logs and writes files)."""
  return jax.process_index() == 0


def main_only(log):
  """`log` on process 0, a no-op on the others."""
  return log if is_main() else (lambda *args, **kwargs: None)


def agree_any(flag: bool) -> bool:
  """True on every process when `flag` is True on any (all processes must call this): e.g. a stop
  signal that reached only some processes of a pod."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils
  flags = np.asarray(multihost_utils.process_allgather(np.asarray(bool(flag))))
  return bool(flags.any())


def _allgather_text(text: str) -> list[str]:
  """Every process's string, in process order (all processes must call this)."""
  from jax.experimental import multihost_utils
  data = np.frombuffer(text.encode("utf-8"), np.uint8)
  lengths = np.asarray(multihost_utils.process_allgather(np.int32(data.size))).reshape(-1)
  padded = np.zeros(int(lengths.max()), np.uint8)
  padded[:data.size] = data
  rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
  return [bytes(row[:n]).decode("utf-8") for row, n in zip(rows, lengths)]


def gather_data_state(state):
  """This process's input-iterator state -> what the checkpoint stores (all processes call it).

  One process: the state itself. Several: {'per_process': [state of process 0, 1, ...]}, since
  each process reads a different part of the data and orbax stores JSON from process 0 only.
  """
  if jax.process_count() == 1:
    return state
  from ois_jax.training import checkpointing
  text = json.dumps(checkpointing.encode_data_state(state))
  return {"per_process": [json.loads(t) for t in _allgather_text(text)]}


def local_data_state(stored):
  """The part of a checkpoint's input-iterator state that belongs to this process."""
  count = jax.process_count()
  if isinstance(stored, dict) and "per_process" in stored:
    states = stored["per_process"]
    if len(states) != count:
      raise CheckpointError(f"the checkpoint's input-pipeline state is from {len(states)} processes, "
                            f"this run has {count}: resume with {len(states)} processes")
    from ois_jax.training import checkpointing
    return checkpointing._decode_data_state(states[jax.process_index()])
  if count > 1 and stored is not None:
    raise CheckpointError(f"the checkpoint's input-pipeline state is from 1 process, this run has "
                          f"{count}: resume with 1 process")
  return stored


def host_local(tree):
  """Global jax.Arrays (possibly spanning other processes' devices) -> numpy copies on every
  process (all processes must call this)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils
  return multihost_utils.process_allgather(tree, tiled=True)
