"""Self-describing checkpoint directories: a params pytree (orbax) plus the model config (JSON).

Layout of a checkpoint directory DIR:

  DIR/ois_checkpoint.json   {"format": "ois-jax-checkpoint", "version": 1, "config": {...}}
                            `config` is a JSON object that rebuilds the model; its "model" key
                            names the model ("depth_anything_v2" for converted DAv2 weights, see
                            ois_jax.models.depth.DepthConfig; "ois" for OIS models).
  DIR/params/               orbax StandardCheckpointer save of the params pytree (nested dicts of
                            arrays, the inner dict of flax's {'params': ...}).

`save_checkpoint` writes into a temporary sibling and renames it into place, so an interrupted save
never leaves a half-written DIR, and it refuses to replace an existing checkpoint unless
`overwrite=True`. `load_checkpoint` returns the params as NumPy arrays and the config as a plain
dict (JSON: tuples come back as lists). Training checkpoints (optimizer state, step, data iterator)
use orbax's CheckpointManager instead; this format is for weights one hands to `from_checkpoint`.
"""

import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np

from ois_jax.errors import CheckpointError

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
    raise TypeError(f"config must be a dict or have to_dict(), got {type(config).__name__}")
  try:
    json.dumps(config)
  except TypeError as e:
    raise TypeError(f"config is not JSON-serialisable: {e}") from None
  return config


def save_checkpoint(directory: str, params: Any, config: Any, overwrite: bool = False) -> str:
  """Save `params` (pytree of arrays) and `config` (dict / ConfigDict) to `directory`.

  Refuses an existing checkpoint unless `overwrite`, and never deletes a non-empty directory that
  is not a checkpoint. Returns the absolute directory path.
  """
  import orbax.checkpoint as ocp  # lazy: slow import

  directory = os.path.abspath(directory)
  config = _config_to_dict(config)
  if os.path.exists(directory):
    if not os.path.isdir(directory):
      raise CheckpointError(f"{directory}: exists and is not a directory")
    if is_checkpoint(directory):
      if not overwrite:
        raise CheckpointError(f"{directory}: already holds a checkpoint; pass --overwrite to replace it")
    elif os.listdir(directory):
      raise CheckpointError(f"{directory}: directory is not empty and is not an ois-jax checkpoint; "
                            "refusing to write into it")
  parent = os.path.dirname(directory)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.tmp-", dir=parent)
  try:
    params = _to_numpy(params)
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(os.path.join(staging, PARAMS_DIR), params)
    metadata = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": config}
    with open(os.path.join(staging, METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=2, sort_keys=True)
    # Swap into place: the old checkpoint is only removed once the new one is complete.
    if os.path.exists(directory):
      old = staging + ".old"
      os.rename(directory, old)
      os.rename(staging, directory)
      shutil.rmtree(old)
    else:
      os.rename(staging, directory)
  finally:
    if os.path.exists(staging):
      shutil.rmtree(staging, ignore_errors=True)
  return directory


def load_config(directory: str) -> dict:
  """The config dict stored in a checkpoint directory."""
  path = os.path.join(directory, METADATA_FILE)
  if not os.path.isdir(directory):
    raise CheckpointError(f"{directory}: no such checkpoint directory")
  if not os.path.exists(path):
    raise CheckpointError(f"{directory}: not an ois-jax checkpoint (no {METADATA_FILE})")
  try:
    with open(path) as f:
      metadata = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{path}: unreadable checkpoint metadata ({e})") from None
  if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
    raise CheckpointError(f"{path}: not an ois-jax checkpoint metadata file")
  if metadata.get("version", 0) > FORMAT_VERSION:
    raise CheckpointError(f"{path}: checkpoint format version {metadata['version']} is newer than "
                          f"this ois-jax reads ({FORMAT_VERSION})")
  if not isinstance(metadata.get("config"), dict):
    raise CheckpointError(f"{path}: checkpoint metadata has no config")
  return metadata["config"]


def load_checkpoint(directory: str) -> tuple[dict, dict]:
  """Returns (params as a nested dict of NumPy arrays, config dict)."""
  import orbax.checkpoint as ocp

  directory = os.path.abspath(directory)
  config = load_config(directory)
  params_path = os.path.join(directory, PARAMS_DIR)
  if not os.path.isdir(params_path):
    raise CheckpointError(f"{params_path}: missing (the checkpoint is incomplete)")
  try:
    with ocp.StandardCheckpointer() as ckptr:
      params = ckptr.restore(params_path)
  except Exception as e:  # orbax/tensorstore raise many types for damaged files
    raise CheckpointError(f"{params_path}: cannot restore params ({type(e).__name__}: "
                          f"{_first_line(e)}); the checkpoint is corrupt or truncated") from None
  return _to_numpy(params), config


def _first_line(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return text[0][:300] if text else ""


def _to_numpy(tree: Any) -> Any:
  """Nested dicts of arrays -> nested plain dicts of NumPy arrays (flax FrozenDicts included)."""
  if hasattr(tree, "items"):
    return {str(k): _to_numpy(v) for k, v in tree.items()}
  return np.asarray(tree)
