"""Self-describing folders: one JSON record inside, with a format name and a version.

Checkpoints (`ois_checkpoint.json`) and exports (`manifest.json`) are read the same way, so a
folder of the wrong kind, an unreadable record or one from a newer ois-jax is one clear error.
Imports neither JAX nor the model code (the export runtime reads manifests without them).
"""

import json
import os
import shutil


def read_record(directory: str, filename: str, format_name: str, format_version: int, error: type,
                kind: str) -> dict:
  """The JSON dict `directory/filename`, checked for its format and version.

  error: the OISError subclass raised, with one line naming the folder or the file;
  kind: what the folder should be, for the messages ("checkpoint", "export").
  """
  path = os.path.join(directory, filename)
  if not os.path.isdir(directory):
    raise error(f"{directory}: no such {kind} directory")
  if not os.path.isfile(path):
    raise error(f"{directory}: not an ois-jax {kind} (no {filename})")
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise error(f"{path}: unreadable {kind} record ({e})") from None
  if not isinstance(record, dict) or record.get("format") != format_name:
    raise error(f"{path}: not an ois-jax {kind} record")
  if record.get("version", 0) > format_version:
    raise error(f"{path}: {kind} format version {record['version']} is newer than this ois-jax "
                f"reads ({format_version})")
  return record


def publish_folder(staging: str, directory: str) -> None:
  """Move a finished `staging` folder to `directory`; a folder already there is removed only once
  the new one is in place, so an interruption never leaves neither."""
  if os.path.exists(directory):
    old = staging + ".old"
    os.rename(directory, old)
    os.rename(staging, directory)
    shutil.rmtree(old)
  else:
    os.rename(staging, directory)
