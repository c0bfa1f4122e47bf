"""The files of a training workdir, and the checks that keep them consistent.

  WORKDIR/config.json          the run config (written only once the run has started or resumed)
  WORKDIR/init_weights.json    where `model.depth_checkpoint` weights came from (fresh runs)
  WORKDIR/checkpoints/<step>/  resumable orbax steps (training/checkpointing.py)
  WORKDIR/checkpoints_damaged/ steps that failed to restore, set aside (never deleted)
  WORKDIR/final, WORKDIR/best  self-describing weights (ois_jax.checkpoint)
  WORKDIR/train_summary.json   loss and validation history of every run on this workdir
  WORKDIR/tensorboard/         TensorBoard event files

A resume must continue the same model: `check_resume` refuses a config whose model (or any key
that changes what is trained) differs from the saved one, naming the keys, and allows the keys
in SAFE_TO_CHANGE (steps, schedule, logging, evaluation, input-pipeline speed, sharding).
"""

import errno
import fnmatch
import json
import os
import socket

import jax

from ois_jax import checkpoint
from ois_jax.errors import CheckpointError, ConfigError

CONFIG_FILE = checkpoint.TRAIN_CONFIG_FILE
INIT_WEIGHTS_FILE = "init_weights.json"
SUMMARY_FILE = "train_summary.json"
DAMAGED = "checkpoints_damaged"

# Keys that may differ between the run that wrote a workdir and the run that resumes it.
SAFE_TO_CHANGE = (
    "name", "total_steps", "checkpoint_every", "data_dir",
    "train.learning_rate", "train.lr_decay_steps", "train.log_every", "train.keep_checkpoints",
    "train.cache_frozen_outputs",
    "train.best_metric", "train.mesh_shape", "train.mesh_axes", "train.logical_axis_rules",
    "train.fsdp_min_size", "train.distributed", "train.coordinator_address", "train.num_processes",
    "train.process_id", "train.distributed_timeout_s",
    "eval.*", "data.worker_count", "data.num_threads", "data.prefetch_buffer",
    "model.depth_checkpoint",  # applied at initialisation only; a resume uses the checkpoint
)


def check_workdir(path: str) -> str:
  """The absolute workdir, created if missing; ConfigError if it is a file, CheckpointError (an OSError) if it is not writable."""
  path = os.path.abspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(f"--workdir {path}: is a file, not a folder")
  check_is_run(path)
  try:
    os.makedirs(path, exist_ok=True)
    # One probe per process: the processes of a multi-host run check the same folder at once.
    probe = os.path.join(path, f".write_test.{socket.gethostname()}.{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise CheckpointError(f"--workdir {path}: cannot write there ({e.strerror})") from None
  return path


# What a training run writes in its workdir (a folder holding anything else is not one).
RUN_ENTRIES = (CONFIG_FILE, INIT_WEIGHTS_FILE, SUMMARY_FILE, DAMAGED, checkpoint.TRAIN_CHECKPOINTS,
               checkpoint.BEST, checkpoint.FINAL, "tensorboard")


def check_is_run(path: str) -> None:
  """ConfigError unless `path` is missing, empty, or a training workdir: a weights export is not
  one (training there would mix the runs), and a folder of other files is refused rather than
  written into (its config.json, say, would be replaced)."""
  from ois_jax import locks
  from ois_jax.export import manifest
  if not os.path.isdir(path):
    return
  names = [n for n in os.listdir(path) if not locks.is_lock_file(n) and not n.startswith(".write_test.")]
  for record, kind in ((manifest.MANIFEST_FILE, "an export (ois-jax export)"),
                       (checkpoint.METADATA_FILE, "a weights folder (best/, final/ or a converted checkpoint)")):
    if record in names:
      raise ConfigError(f"--workdir {path}: is {kind}, not a training workdir; give a new folder "
                     "(and load these weights with --checkpoint)")
  if not names or checkpoint.TRAIN_CHECKPOINTS in names or SUMMARY_FILE in names:
    return
  others = sorted(n for n in names if n not in RUN_ENTRIES) or sorted(names)
  raise ConfigError(f"--workdir {path}: holds files that are not an ois-jax training run "
                 f"({', '.join(others[:5])}); give a new or empty folder")


def check_config_values(config) -> None:
  """ConfigError for values that would fail late, deep inside JAX (checked before any work)."""
  positive = {"data.batch_size": config.data.batch_size, "checkpoint_every": config.checkpoint_every,
              "train.log_every": config.train.log_every, "eval.max_clicks": config.eval.max_clicks,
              "eval.batch_size": config.eval.batch_size, "model.input_size": config.model.input_size}
  for key, value in positive.items():
    if not isinstance(value, int) or value < 1:
      raise ConfigError(f"{key} must be a positive integer, got {value!r}")
  if not isinstance(config.total_steps, int) or config.total_steps < 0:
    raise ConfigError(f"total_steps must be a non-negative integer, got {config.total_steps!r}")
  from ois_jax.models import prompts
  capacity = prompts.click_capacity(config.model.num_positive_slots, config.model.num_negative_slots)
  if config.eval.max_clicks > capacity:
    raise ConfigError(f"eval.max_clicks {config.eval.max_clicks}: the model has "
                      f"{config.model.num_positive_slots} positive and {config.model.num_negative_slots} "
                      f"negative click slots, so at most {capacity} clicks are sure to reach it")
  if not (isinstance(config.eval.threshold, (int, float)) and 0.0 <= config.eval.threshold <= 1.0):
    raise ConfigError(f"eval.threshold must be in [0, 1], got {config.eval.threshold!r}")
  if not config.train.learning_rate >= 0:
    raise ConfigError(f"train.learning_rate must be >= 0, got {config.train.learning_rate!r}")


def write_config(config, workdir: str) -> str:
  path = os.path.join(workdir, CONFIG_FILE)
  _write_atomic(path, config.to_json_best_effort(indent=2, sort_keys=True))
  return path


def saved_config(workdir: str) -> dict | None:
  """The config the workdir's checkpoints were trained with (None if there is no record)."""
  try:
    with open(os.path.join(workdir, CONFIG_FILE)) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError) as e:
    raise CheckpointError(f"{workdir}/{CONFIG_FILE}: unreadable ({e})") from None


def check_resume(config, workdir: str, log=print) -> None:
  """Refuse to resume `workdir` with a config that trains something else (ConfigError naming
  the keys); log the keys that changed and may change."""
  from ois_jax import config as config_lib
  saved = saved_config(workdir)
  if saved is None:
    return
  now = config_lib.flat_keys(json.loads(config.to_json_best_effort()))
  before = config_lib.flat_keys(saved)
  norm = lambda v: list(v) if isinstance(v, (list, tuple)) else v
  changed = sorted(k for k in set(now) | set(before) if norm(now.get(k)) != norm(before.get(k)))
  safe = [k for k in changed if any(fnmatch.fnmatchcase(k, p) for p in SAFE_TO_CHANGE)]
  unsafe = [k for k in changed if k not in safe]
  describe = lambda k: f"{k}: {before.get(k)!r} -> {now.get(k)!r}"
  if unsafe:
    raise ConfigError(f"{workdir} was trained with another config; resuming would mix two "
                      f"models: {'; '.join(describe(k) for k in unsafe)}. Use a new --workdir, or "
                      f"the saved config ({CONFIG_FILE}); keys that may change on a resume: "
                      f"{', '.join(SAFE_TO_CHANGE)}")
  if safe:
    log("Resuming with changed keys (safe to change): " + "; ".join(describe(k) for k in safe))


def write_summary(workdir: str, summary: dict) -> None:
  """train_summary.json; a resumed run appends to the earlier runs' history (steps after the
  resume point are replaced: they were trained again)."""
  path = os.path.join(workdir, SUMMARY_FILE)
  earlier = {}
  try:
    with open(path) as f:
      earlier = json.load(f)
  except (OSError, ValueError):
    pass
  keep = lambda rows: [r for r in rows if isinstance(r, dict) and r.get("step", 0) <= summary["start_step"]]
  record = dict(summary, history=keep(earlier.get("history", [])) + summary["history"],
                validation=keep(earlier.get("validation", [])) + summary["validation"])
  _write_atomic(path, json.dumps(record, indent=1, default=float))


def _write_atomic(path: str, text: str) -> None:
  from ois_jax import outputs
  outputs.write_text(path, text, what="workdir file")


def load_initial_weights(path: str, workdir: str, log=print) -> dict:
  """DepthAnythingV2 weights for `model.depth_checkpoint`, recorded in `workdir/init_weights.json`.

  Returns the Flax params {'pretrained', 'depth_head'}; the encoder, the frozen depth head and
  the segmentation head start from them (`ois.init_from_depth`, which checks every shape).
  """
  from ois_jax.convert import load_depth_weights
  params, description = load_depth_weights(path)
  log(f"Initialising the encoder, the depth head and the segmentation head from {description}")
  if jax.process_index() == 0:
    _write_atomic(os.path.join(workdir, INIT_WEIGHTS_FILE), json.dumps(
        {"depth_checkpoint": os.path.abspath(path), "loaded": description}, indent=1))
  return params


class WeightExports:
  """`workdir/final` and `workdir/best`: self-describing params + config (ois_jax.checkpoint)."""

  def __init__(self, workdir: str, config):
    self.workdir, self.config = workdir, config
    self.metric = config.train.get("best_metric") or None
    best = os.path.join(workdir, checkpoint.BEST)
    info = checkpoint.stored_info(best) if checkpoint.is_checkpoint(best) else {}
    self.best_value = (info.get("metrics") or {}).get(self.metric)  # kept across resumes

  def _save(self, name: str, params, info: dict) -> None:
    from ois_jax.training import distributed
    params = distributed.host_local(params)  # every process takes part in the gather
    if jax.process_index() == 0:
      checkpoint.save_checkpoint(os.path.join(self.workdir, name), params, self.config.to_dict(),
                                 overwrite=True, info=info)

  def maybe_best(self, step: int, params, metrics: dict, log=print) -> None:
    """Export `params` as the best weights if `metrics[best_metric]` is the lowest so far."""
    value = metrics.get(self.metric) if self.metric else None
    if value is None or (self.best_value is not None and value >= self.best_value):
      return
    self.best_value = float(value)
    self._save(checkpoint.BEST, params, {"step": int(step), "best_metric": self.metric,
                                         "metrics": {k: float(v) for k, v in metrics.items()}})
    log(f"step {step}: best {self.metric} so far ({value:.3f}), exported to "
        f"{os.path.join(self.workdir, checkpoint.BEST)}")

  def final(self, step: int, params, complete: bool) -> None:
    self._save(checkpoint.FINAL, params, {"step": int(step), "complete": bool(complete)})


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(error: BaseException) -> bool:
  """True for an out-of-space error, also when a library wrapped it in another exception."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in NO_SPACE:
      return True
    text = str(error)
    if "No space left on device" in text or "Disk quota exceeded" in text or "RESOURCE_EXHAUSTED: " \
        "No space" in text:
      return True
    error = error.__cause__ or error.__context__
  return False
