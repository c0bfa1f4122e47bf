"""Reading and writing PyTorch-side weight files as `dict[str, np.ndarray]`.

`.safetensors` is read and written with safetensors.numpy (no torch). `.pth` / `.pt` need torch,
imported only here and only when such a file is used. Damaged files raise CheckpointError naming
the file; outputs are written to a temporary file and renamed, and never replace an existing file
unless `overwrite=True`.
"""

import json
import os

import numpy as np

from ois_jax.errors import CheckpointError

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
_WRAPPER_KEYS = ("state_dict", "model", "module")  # training scripts often nest the weights


def sizes_path(weights_path: str) -> str:
  """Where the sizes of a custom-size weight file live: `x.pth` -> `x.json` beside it."""
  return os.path.splitext(weights_path)[0] + ".json"


def _import_torch(path):
  try:
    import torch
  except ImportError:
    raise CheckpointError(f"{path}: reading or writing PyTorch .pth files needs PyTorch; install it "
                          "with `pip install 'ois-jax[torch]'`, or use a .safetensors file") from None
  return torch


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Tensors of a .pth/.pt/.bin or .safetensors file as NumPy arrays (bf16 becomes float32)."""
  if not os.path.isfile(path):
    raise CheckpointError(f"{path}: no such file")
  if path.endswith(SAFETENSORS_SUFFIX):
    return _read_safetensors(path)
  if path.endswith(TORCH_SUFFIXES):
    return _read_torch(path)
  raise CheckpointError(f"{path}: unknown weight file type; expected .pth, .pt, .bin or .safetensors")


def _read_safetensors(path):
  from safetensors import numpy as st_numpy
  try:
    return dict(st_numpy.load_file(path))
  except Exception as e:  # SafetensorError, OSError, ... for truncated or foreign files
    raise CheckpointError(f"{path}: not a readable safetensors file, corrupt or truncated "
                          f"({type(e).__name__}: {e})") from None


def _read_torch(path):
  torch = _import_torch(path)
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # truncated zip, foreign pickle, a whole pickled module, ...
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    raise CheckpointError(f"{path}: cannot load as a PyTorch state dict, the file is corrupt, "
                          f"truncated or not a state dict ({type(e).__name__}: {first})") from None
  for _ in range(2):  # unwrap {'model': {...}} / {'state_dict': {...}}
    if isinstance(obj, dict) and len(obj) == 1 and next(iter(obj)) in _WRAPPER_KEYS:
      obj = next(iter(obj.values()))
  if not isinstance(obj, dict):
    raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
  out = {}
  for key, value in obj.items():
    if not isinstance(value, torch.Tensor):
      raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
    key = key[len("module."):] if key.startswith("module.") else key  # DistributedDataParallel
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:  # NumPy has no bfloat16; float32 holds it exactly
      value = value.float()
    out[key] = value.numpy()
  return out


def _check_output(path, overwrite):
  from ois_jax import outputs
  outputs.check_file(path, overwrite, what="output")


def _atomic_write(path, write_fn):
  from ois_jax import outputs
  with outputs.writing(path, what="output") as tmp:
    write_fn(tmp)


def write_state_dict(path: str, state_dict: dict[str, np.ndarray], overwrite: bool = False) -> None:
  """Write to .pth/.pt (torch.save of CPU tensors) or .safetensors (Hub metadata format=pt)."""
  _check_output(path, overwrite)
  arrays = {k: np.ascontiguousarray(v) for k, v in state_dict.items()}
  if path.endswith(SAFETENSORS_SUFFIX):
    from safetensors import numpy as st_numpy
    _atomic_write(path, lambda tmp: st_numpy.save_file(arrays, tmp, metadata={"format": "pt"}))
  elif path.endswith(TORCH_SUFFIXES):
    torch = _import_torch(path)
    # torch.from_numpy warns on read-only arrays (e.g. memory-mapped safetensors): copy those.
    tensors = {k: torch.from_numpy(v if v.flags.writeable else v.copy()) for k, v in arrays.items()}
    _atomic_write(path, lambda tmp: torch.save(tensors, tmp))
  else:
    raise CheckpointError(f"{path}: unknown weight file type; expected .pth, .pt or .safetensors")


def write_json(path: str, obj: dict, overwrite: bool = False) -> None:
  _check_output(path, overwrite)
  def write(tmp):
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=2)
  _atomic_write(path, write)
