"""DepthAnythingV2 checkpoint conversion between PyTorch (original .pth, Hugging Face) and Flax.

  params, variant, fmt = load_pytorch_weights("depth_anything_v2_vits.pth")
  convert_to_flax("depth_anything_v2_vits.pth", "ckpt/dav2_vits")      # -> self-describing orbax dir
  convert_from_flax("ckpt/dav2_vits", "dav2_vits.pth")                  # original layout
  convert_from_flax("ckpt/dav2_vits", "hf/model.safetensors")           # Hugging Face layout
"""

import logging
import os

from ois_jax.convert.depth_anything import (FORMATS, detect_format, detect_variant, expected_flax_shapes,
                                            expected_hf_shapes, expected_original_shapes, from_hf,
                                            from_original, from_state_dict, hf_config, params_variant,
                                            to_hf, to_original)
from ois_jax.convert.files import read_state_dict, write_json, write_state_dict
from ois_jax.errors import CheckpointError

log = logging.getLogger(__name__)

__all__ = [
    "FORMATS", "detect_format", "detect_variant", "expected_flax_shapes", "expected_hf_shapes",
    "expected_original_shapes", "from_hf", "from_original", "from_state_dict", "hf_config",
    "params_variant", "to_hf", "to_original", "read_state_dict", "write_state_dict",
    "load_pytorch_weights", "load_depth_weights", "export_weights", "convert_to_flax",
    "convert_from_flax",
]


def load_pytorch_weights(path: str, fmt: str | None = None, variant: str | None = None):
  """A .pth/.pt/.safetensors file -> (Flax params, variant, format)."""
  state_dict = read_state_dict(path)
  return from_state_dict(state_dict, fmt, variant, source=path)


def load_depth_weights(path: str) -> tuple[dict, str]:
  """DepthAnythingV2 weights from a converted checkpoint folder or a .pth / .safetensors file.

  Returns (Flax params {'pretrained': ..., 'depth_head': ...}, a description of what was read).
  A file is converted on the fly (layout and variant detected); a folder must hold a converted
  DAv2 checkpoint, and an OIS checkpoint there is refused with a CheckpointError.
  """
  from ois_jax import checkpoint
  from ois_jax.models.depth import MODEL_NAME
  if os.path.isdir(path):
    params, config = checkpoint.load_checkpoint(path)
    if config.get("model") != MODEL_NAME:
      kind = "an OIS" if isinstance(config.get("model"), dict) else f"a {config.get('model')!r}"
      raise CheckpointError(f"{path}: holds {kind} checkpoint, not converted DepthAnythingV2 weights "
                            "(give a converted DAv2 checkpoint folder or a .pth / .safetensors file)")
    return params, f"converted DepthAnythingV2 {config.get('variant', '?')} checkpoint {path}"
  if not os.path.isfile(path):
    raise CheckpointError(f"{path}: no such DepthAnythingV2 checkpoint (a converted folder or a "
                          ".pth / .safetensors file)")
  params, variant, fmt = load_pytorch_weights(path)
  return params, f"DepthAnythingV2 {variant} weights ({fmt} layout) converted from {path}"


def default_format(path: str) -> str:
  """Output layout from the file name: .safetensors -> 'hf', .pth/.pt -> 'original'."""
  return "hf" if path.endswith(".safetensors") else "original"


def export_weights(params: dict, path: str, fmt: str | None = None, overwrite: bool = False) -> str:
  """Write Flax params as a PyTorch-side file; returns the layout written."""
  fmt = fmt or default_format(path)
  if fmt not in FORMATS:
    raise CheckpointError(f"unknown checkpoint format {fmt!r}; expected one of {FORMATS}")
  state_dict = to_hf(params) if fmt == "hf" else to_original(params)
  write_state_dict(path, state_dict, overwrite=overwrite)
  return fmt


def convert_to_flax(src: str, dst: str, fmt: str | None = None, variant: str | None = None,
                    overwrite: bool = False, pos_embed_mode: str = "original"):
  """PyTorch-side weights -> orbax checkpoint dir with its DepthConfig. Returns (config, fmt)."""
  from ois_jax import checkpoint
  from ois_jax.models.depth import DepthConfig
  if os.path.exists(dst) and checkpoint.is_checkpoint(dst) and not overwrite:  # fail before the work
    raise CheckpointError(f"{dst}: already holds a checkpoint; pass --overwrite to replace it")
  log.info("reading %s", src)
  params, variant, fmt = load_pytorch_weights(src, fmt, variant)
  log.info("converted %s layout, variant %s; saving %s", fmt, variant, dst)
  config = DepthConfig(variant=variant, pos_embed_mode=pos_embed_mode)
  checkpoint.save_checkpoint(dst, params, config, overwrite=overwrite)
  return config, fmt


def convert_from_flax(src_dir: str, dst: str, fmt: str | None = None, overwrite: bool = False) -> str:
  """Orbax checkpoint dir -> .pth (original layout) or .safetensors (Hugging Face layout).

  Writing `model.safetensors` also writes `config.json` beside it (if absent, or with overwrite),
  so that `DepthAnythingForDepthEstimation.from_pretrained(folder)` loads it.
  """
  from ois_jax.models.depth import load_depth_model
  if os.path.exists(dst) and not overwrite:
    raise CheckpointError(f"{dst}: already exists; pass --overwrite to replace it")
  log.info("loading %s", src_dir)
  _, config, params = load_depth_model(src_dir)
  fmt = export_weights(params, dst, fmt, overwrite=overwrite)
  if fmt == "hf" and os.path.basename(dst) == "model.safetensors":
    config_path = os.path.join(os.path.dirname(os.path.abspath(dst)), "config.json")
    if overwrite or not os.path.exists(config_path):
      write_json(config_path, hf_config(config.variant), overwrite=True)
      log.info("wrote %s", config_path)
  log.info("wrote %s (%s layout, variant %s)", dst, fmt, config.variant)
  return fmt
