"""The manifest of an export folder: what each artifact takes and returns, and how to feed it.

Imports neither JAX nor the model code, so a runtime can read it anywhere. The layout:

  {"format": "ois-jax-export", "version": 1,
   "kind": "ois" | "depth_anything_v2", "backend": "onnx" | "jax",
   "artifacts": {NAME: {"file": ..., "sha256": ..., "inputs": [TENSOR...], "outputs": [TENSOR...]}},
   "params": {"file": "params.npz", "sha256": ..., "names": [...]}        (backend "jax" only)
   "preprocessing": {...}, "clicks": {...}, "postprocessing": {...}         (see exporter.py)
   "source": {"checkpoint": ..., "config": {...}}, "created_by": {...}, "verification": {...}}

TENSOR is {"name": ..., "shape": [BATCH_DIM, 112, 112, 3], "dtype": "float32"}: the leading
"batch" is dynamic, every other size is fixed.
"""

import hashlib
import json
import os

from ois_jax import records
from ois_jax.errors import ExportError

FORMAT_NAME = "ois-jax-export"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
BATCH_DIM = "batch"


def tensor(name: str, shape, dtype) -> dict:
  """A TENSOR entry; `shape` is (batch-free) sizes, the batch dimension is put first."""
  return {"name": name, "shape": [BATCH_DIM, *[int(d) for d in shape]], "dtype": str(dtype)}


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def is_export(directory: str) -> bool:
  return os.path.isfile(os.path.join(directory, MANIFEST_FILE))


def listed_files(directory: str) -> list[str]:
  """The files of an export as its manifest lists them (manifest.json included); an unreadable
  manifest lists only itself, so replacing such a folder keeps every other file."""
  try:
    with open(os.path.join(directory, MANIFEST_FILE)) as f:
      manifest = json.load(f)
  except (OSError, ValueError):
    return [MANIFEST_FILE]
  entries = list((manifest.get("artifacts") or {}).values()) if isinstance(manifest, dict) else []
  if isinstance(manifest, dict) and isinstance(manifest.get("params"), dict):
    entries.append(manifest["params"])
  names = [MANIFEST_FILE]
  for entry in entries:
    if isinstance(entry, dict):
      names += [entry[k] for k in ("file", "external_data") if isinstance(entry.get(k), str)]
  return names


def write(directory: str, manifest: dict) -> str:
  path = os.path.join(directory, MANIFEST_FILE)
  with open(path, "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
  return path


def read(directory: str, backend: str | None = None) -> dict:
  """The manifest of an export folder, checked for its format (and backend when given)."""
  manifest = records.read_record(directory, MANIFEST_FILE, FORMAT_NAME, FORMAT_VERSION, ExportError,
                                 "export")
  path = os.path.join(directory, MANIFEST_FILE)
  if backend is not None and manifest.get("backend") != backend:
    raise ExportError(f"{directory}: holds a {manifest.get('backend')!r} export, not {backend!r}")
  if not isinstance(manifest.get("artifacts"), dict) or not manifest["artifacts"]:
    raise ExportError(f"{path}: the manifest lists no artifacts")
  return manifest


def check_file(directory: str, entry: dict, what: str) -> str:
  """Path of an artifact (or params) file, after checking it exists and matches its sha256."""
  path = os.path.join(directory, entry["file"])
  if not os.path.isfile(path):
    raise ExportError(f"{path}: missing ({what} listed in the manifest); the export is incomplete")
  if sha256(path) != entry["sha256"]:
    raise ExportError(f"{path}: does not match the manifest (sha256 differs); the {what} was "
                      "replaced or the folder mixes two exports: export again")
  return path


def check_signature(what: str, expected: list[dict], actual: list[dict]) -> None:
  """Raise ExportError unless the artifact's tensors (name, shape, dtype) equal the manifest's."""
  def describe(t):
    return f"{t['name']} {t['dtype']}[{', '.join(str(d) for d in t['shape'])}]"
  exp, act = [describe(t) for t in expected], [describe(t) for t in actual]
  if exp != act:
    raise ExportError(f"{what} does not match the manifest: the manifest lists {exp}, the artifact "
                      f"has {act}")
