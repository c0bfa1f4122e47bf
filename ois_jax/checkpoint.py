"""Self-describing checkpoint directories (params + the config that built them), and finding the
weights of a training run.

Layout of a checkpoint directory DIR:

  DIR/ois_checkpoint.json   {"format": "ois-jax-checkpoint", "version": 1, "config": {...},
                             "info": {...}}
                            `config` is a JSON object that rebuilds the model: for OIS, the run
                            config whose "model" key is the model section (a dict); for converted
                            DAv2 weights, "model" is "depth_anything_v2" (see
                            ois_jax.models.depth.DepthConfig). `info` (optional) says where the
                            weights come from, e.g. {"step": 200, "metrics": {"NoC90": 5.1}}.
  DIR/params/               orbax StandardCheckpointer save of the params pytree (nested dicts of
                            arrays, the inner dict of flax's {'params': ...}).

A training workdir (`ois-jax train --workdir W`) holds W/config.json, the resumable training
checkpoints W/checkpoints/<step>/ (orbax: state and input-pipeline state), and two
self-describing exports: W/final (the last trained step) and W/best (the step with the best
validation metric, when validation ran). `load_weights` accepts any of these: an export, a
workdir (best when there is one, else the newest step) or one training step.

`save_checkpoint` writes into a temporary sibling and renames it into place, so an interrupted save
never leaves a half-written DIR, and it refuses to replace an existing checkpoint unless
`overwrite=True`. `load_checkpoint` returns the params as NumPy arrays and the config as a plain
dict (JSON: tuples come back as lists). Training checkpoints (optimizer state, step, data iterator)
use orbax's CheckpointManager instead; this format is for weights one hands to `from_checkpoint`.
"""

import dataclasses
import json
import os
from typing import Any

import numpy as np

from ois_jax import _logging, records
from ois_jax.errors import CheckpointError, ConfigError, first_line, path_argument

METADATA_FILE = "ois_checkpoint.json"
PARAMS_DIR = "params"
FORMAT_NAME = "ois-jax-checkpoint"
FORMAT_VERSION = 1


def is_checkpoint(path: str) -> bool:
  """True when `path` is a directory holding an ois-jax checkpoint (or the remains of one)."""
  return os.path.isdir(path) and (os.path.exists(os.path.join(path, METADATA_FILE))
                                  or os.path.exists(os.path.join(path, PARAMS_DIR)))


def _config_to_dict(config: Any) -> dict:
  if hasattr(config, "to_dict"):  # ml_collections.ConfigDict, DepthConfig
    config = config.to_dict()
  if not isinstance(config, dict):
    raise ConfigError(f"config must be a dict or have to_dict(), got {type(config).__name__}")
  try:
    json.dumps(config)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config is not JSON-serialisable: {e}") from None
  return config


def save_checkpoint(directory: str, params: Any, config: Any, overwrite: bool = False,
                    info: dict | None = None) -> str:
  """Save `params` (pytree of arrays) and `config` (dict / ConfigDict) to `directory`.

  `info`: JSON-serialisable facts about the weights (step, metrics) kept in the metadata.
  Refuses an existing checkpoint unless `overwrite`, and never deletes a non-empty directory that
  is not a checkpoint. Returns the absolute directory path.
  """

  from ois_jax import outputs
  directory = os.path.abspath(path_argument(directory, "the checkpoint directory", CheckpointError))
  config = _config_to_dict(config)
  if os.path.exists(directory):
    if not os.path.isdir(directory):
      raise CheckpointError(f"{directory}: exists and is not a directory")
    if is_checkpoint(directory):
      if not overwrite:
        raise CheckpointError(f"{directory}: already holds a checkpoint; pass --overwrite to replace it")
      outputs.check_replaceable(directory, (METADATA_FILE, PARAMS_DIR), "checkpoint", CheckpointError)
    elif os.listdir(directory):
      raise CheckpointError(f"{directory}: directory is not empty and is not an ois-jax checkpoint; "
                            "refusing to write into it")
  params = _to_numpy(params)
  check_finite(params, f"{directory}: refusing to save")
  with outputs.staged_folder(directory, what="checkpoint") as staging:
    with _local_checkpointer() as ckptr:
      ckptr.save(os.path.join(staging, PARAMS_DIR), params)
    metadata = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": config}
    if info:
      metadata["info"] = info
    with open(os.path.join(staging, METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=2, sort_keys=True)
  return directory


def stored_config(directory: str) -> dict:
  """The config dict stored in a checkpoint directory."""
  return _metadata(directory)["config"]


def stored_info(directory: str) -> dict:
  """The `info` dict stored in a checkpoint directory ({} when none)."""
  info = _metadata(directory).get("info")
  return info if isinstance(info, dict) else {}


def _metadata(directory: str) -> dict:
  metadata = records.read_record(directory, METADATA_FILE, FORMAT_NAME, FORMAT_VERSION,
                                 CheckpointError, "checkpoint")
  path = os.path.join(directory, METADATA_FILE)
  if not isinstance(metadata.get("config"), dict):
    raise CheckpointError(f"{path}: checkpoint metadata has no config")
  return metadata


def load_checkpoint(directory: str) -> tuple[dict, dict]:
  """Returns (params as a nested dict of NumPy arrays, config dict)."""

  directory = os.path.abspath(path_argument(directory, "the checkpoint directory", CheckpointError))
  config = stored_config(directory)
  params_path = os.path.join(directory, PARAMS_DIR)
  if not os.path.isdir(params_path):
    raise CheckpointError(f"{params_path}: missing (the checkpoint is incomplete)")
  try:
    with _local_checkpointer() as ckptr:
      params = ckptr.restore(params_path)
  except Exception as e:  # orbax/tensorstore raise many types for damaged files
    raise CheckpointError(f"{params_path}: cannot restore params ({type(e).__name__}: "
                          f"{first_line(e)}); the checkpoint is corrupt or truncated") from None
  return _to_numpy(params), config


def _local_checkpointer():
  """An orbax StandardCheckpointer for this process alone: a weights folder is written and read by
  one process (in multi-process training, process 0), with no barrier across processes."""
  import jax
  import orbax.checkpoint as ocp
  me = jax.process_index()
  return ocp.StandardCheckpointer(multiprocessing_options=ocp.options.MultiprocessingOptions(
      primary_host=me, active_processes={me}))




def nonfinite_leaves(params: Any, prefix: str = "") -> list[tuple[str, int]]:
  """(key path, count) of every floating-point leaf holding NaN or inf, e.g. [('encoder/w', 3)]."""
  if hasattr(params, "items"):
    return [bad for k, v in params.items() for bad in nonfinite_leaves(v, f"{prefix}{k}/")]
  x = np.asarray(params)
  if not np.issubdtype(x.dtype, np.inexact):
    return []
  count = int(x.size - np.count_nonzero(np.isfinite(x)))
  return [(prefix.rstrip("/"), count)] if count else []


def check_finite(params: Any, where: str) -> None:
  """CheckpointError when any weight is NaN or infinite (a diverged run): such weights give
  all-NaN probabilities, i.e. empty masks, without any other sign."""
  bad = nonfinite_leaves(params)
  if bad:
    total = sum(n for _, n in bad)
    shown = ", ".join(f"{k} ({n})" for k, n in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    raise CheckpointError(f"{where}: {total} weights are NaN or infinite, in {len(bad)} arrays: {shown}; "
                          "the training run that made them diverged")


def _to_numpy(tree: Any) -> Any:
  """Nested dicts of arrays -> nested plain dicts of NumPy arrays (flax FrozenDicts included)."""
  if hasattr(tree, "items"):
    return {str(k): _to_numpy(v) for k, v in tree.items()}
  return np.asarray(tree)


# --- the weights of a training run -----------------------------------------------------------------
TRAIN_CONFIG_FILE = "config.json"   # the run config, written by the trainer
TRAIN_CHECKPOINTS = "checkpoints"   # W/checkpoints/<step>/{state, data}: resumable orbax steps
TRAIN_STATE_ITEM = "state"
BEST = "best"                       # W/best, W/final: self-describing exports
FINAL = "final"


@dataclasses.dataclass(frozen=True)
class Weights:
  """Params, the config that built them, and a one-line account of where they come from."""
  params: dict
  config: dict
  source: str


def is_workdir(path: str) -> bool:
  """True when `path` looks like a training workdir."""
  return os.path.isdir(path) and any(os.path.exists(os.path.join(path, name)) for name in (
      TRAIN_CHECKPOINTS, BEST, FINAL))


def training_steps(workdir: str) -> list[int]:
  """The committed steps under W/checkpoints (orbax writes a step into a temporary folder first)."""
  folder = os.path.join(workdir, TRAIN_CHECKPOINTS)
  if not os.path.isdir(folder):
    return []
  return sorted(int(name) for name in os.listdir(folder)
                if name.isdigit() and os.path.isdir(os.path.join(folder, name, TRAIN_STATE_ITEM)))


def _describe(path: str, info: dict) -> str:
  parts = [f"step {info['step']}"] if "step" in info else []
  metrics = info.get("metrics") or {}
  if info.get("best_metric") in metrics:
    parts.append(f"best {info['best_metric']} {metrics[info['best_metric']]:.3f}")
  return path + (f" ({', '.join(parts)})" if parts else "")


def _read_run_config(workdir: str) -> dict:
  path = os.path.join(workdir, TRAIN_CONFIG_FILE)
  try:
    with open(path) as f:
      config = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{workdir}: cannot read the run config {path} ({e})") from None
  if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
    raise CheckpointError(f"{path}: not an ois-jax run config (no model section)")
  return config


def absl_warnings_off():
  """Orbax warns through absl when it reads a step's metadata piecemeal ("Metadata file does not
  exist", "could not be restored") although the step is healthy: silence it for that read."""
  return _logging.quieted("absl")


def _load_step(step_dir: str, workdir: str) -> Weights:
  """The params of one resumable training step, with the run's config."""
  import jax
  import orbax.checkpoint as ocp
  config = _read_run_config(workdir)
  _check_ois(os.path.join(workdir, TRAIN_CONFIG_FILE), config)
  state_path = os.path.join(step_dir, TRAIN_STATE_ITEM)
  try:
    with absl_warnings_off(), ocp.StandardCheckpointer() as ckptr:
      tree = ckptr.metadata(state_path).item_metadata.tree
      target = {"params": jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), tree["params"])}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    with ocp.PyTreeCheckpointer() as ckptr:
      restored = ckptr.restore(state_path, args=ocp.args.PyTreeRestore(
          item=target, restore_args=restore_args, partial_restore=True))
  except Exception as e:  # orbax/tensorstore raise many types for damaged files
    raise CheckpointError(f"{state_path}: cannot restore the params ({type(e).__name__}: "
                          f"{first_line(e)}); the step is corrupt or truncated") from None
  step = os.path.basename(os.path.normpath(step_dir))
  return Weights(_to_numpy(restored["params"]), config, f"{step_dir} (training step {step})")


def _check_ois(path: str, config: dict) -> None:
  """CheckpointError unless `config` is an OIS run config whose values have the schema's types
  (an edited metadata file fails here, not deep inside the model)."""
  if not isinstance(config.get("model"), dict):
    kind = config.get("model")
    raise CheckpointError(f"{path}: holds {kind!r} weights, not an OIS model"
                          + ("; train OIS from them with --config.model.depth_checkpoint=PATH"
                             if kind == "depth_anything_v2" else ""))
  from ois_jax import config as config_lib
  problems = config_lib.type_problems(config)
  if problems:
    raise CheckpointError(f"{path}: its metadata is edited or damaged: {'; '.join(problems[:3])}")


def as_float32(params: Any) -> Any:
  """Nested dicts of arrays with every floating-point leaf as float32. A checkpoint may store
  float16 to stay small (the bundled model does); the model computes with float32 params."""
  if hasattr(params, "items"):
    return {k: as_float32(v) for k, v in params.items()}
  x = np.asarray(params)
  return x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x


def load_weights(path: str, log=None) -> Weights:
  """OIS weights from an export (W/best, W/final or any save_checkpoint folder), a training
  workdir (its best export when there is one, else its newest step) or one training step
  (W/checkpoints/<step>). `log(message)` hears which weights were chosen. Weights holding NaN or
  inf are refused (CheckpointError)."""
  weights = _load_weights(path, log)
  check_finite(weights.params, weights.source)
  return weights


def _load_weights(path: str, log=None) -> Weights:
  path = os.path.normpath(os.path.abspath(path_argument(path, "the checkpoint", CheckpointError)))
  if not os.path.exists(path):
    raise CheckpointError(f"{path}: no such checkpoint directory, export or training workdir")
  if os.path.exists(os.path.join(path, METADATA_FILE)):
    params, config = load_checkpoint(path)
    _check_ois(path, config)
    return Weights(as_float32(params), config, _describe(path, stored_info(path)))
  parent = os.path.dirname(path)
  if os.path.isdir(os.path.join(path, TRAIN_STATE_ITEM)) and os.path.basename(parent) == TRAIN_CHECKPOINTS:
    return _load_step(path, os.path.dirname(parent))
  if not is_workdir(path):
    raise CheckpointError(f"{path}: not an ois-jax checkpoint, export or training workdir "
                          f"(no {METADATA_FILE}, {TRAIN_CHECKPOINTS}/, {BEST}/ or {FINAL}/)")
  best, final = os.path.join(path, BEST), os.path.join(path, FINAL)
  steps = training_steps(path)
  if os.path.exists(os.path.join(best, METADATA_FILE)):
    choice, why = best, "the best validation step"
  elif os.path.exists(os.path.join(final, METADATA_FILE)) and (
      not steps or stored_info(final).get("step", -1) >= steps[-1]):
    choice, why = final, "no validation ran, so the latest step"
  elif steps:
    choice, why = os.path.join(path, TRAIN_CHECKPOINTS, str(steps[-1])), "the latest step"
  else:
    raise CheckpointError(f"{path}: training workdir without weights yet (no committed step, "
                          f"no {BEST}/ or {FINAL}/)")
  weights = _load_weights(choice)
  if log is not None:
    log(f"using {weights.source}: {why} of {path}")
  return weights
