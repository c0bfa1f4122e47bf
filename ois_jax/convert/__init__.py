"""DepthAnythingV2 checkpoint conversion between PyTorch (original .pth, Hugging Face) and Flax.

  params, variant, fmt = load_pytorch_weights("depth_anything_v2_vits.pth")
  convert_to_flax("depth_anything_v2_vits.pth", "ckpt/dav2_vits")      # -> self-describing orbax dir
  convert_from_flax("ckpt/dav2_vits", "dav2_vits.pth")                  # original layout
  convert_from_flax("ckpt/dav2_vits", "hf/model.safetensors")           # Hugging Face layout

A custom-size model (DepthConfig(variant="custom", size=DepthSize(...))) is exported with its
sizes in a small JSON beside the weights (`dav2_tiny.pth` -> `dav2_tiny.json`, see `sizes_path`):
the tensors' shapes do not tell the number of attention heads nor the intermediate layers. Reading
such a file picks the JSON up again; without it the error says what is missing.
"""

import json
import logging
import os

from ois_jax.convert.depth_anything import (FORMATS, detect_format, detect_variant, expected_flax_shapes,
                                            expected_hf_shapes, expected_original_shapes, from_hf,
                                            from_original, from_state_dict, hf_config, params_variant,
                                            to_hf, to_original)
from ois_jax.convert.files import read_state_dict, sizes_path, write_json, write_state_dict
from ois_jax.errors import CheckpointError

log = logging.getLogger(__name__)

__all__ = [
    "FORMATS", "detect_format", "detect_variant", "expected_flax_shapes", "expected_hf_shapes",
    "expected_original_shapes", "from_hf", "from_original", "from_state_dict", "hf_config",
    "params_variant", "to_hf", "to_original", "read_state_dict", "write_state_dict",
    "load_pytorch_weights", "load_depth_weights", "export_weights", "convert_to_flax",
    "convert_from_flax", "sizes_path", "read_sizes_file",
]


def read_sizes_file(path: str):
  """The DepthConfig stored in a sizes JSON (as written by `export_weights`); CheckpointError if unusable."""
  from ois_jax.models.depth import MODEL_NAME, DepthConfig
  try:
    with open(path) as f:
      record = json.load(f)
    if not isinstance(record, dict) or record.get("model") != MODEL_NAME:
      raise ValueError(f"not a DepthAnythingV2 sizes file (its model is not {MODEL_NAME!r})")
    return DepthConfig.from_dict(record)
  except (OSError, ValueError, TypeError, KeyError) as e:
    raise CheckpointError(f"{path}: unusable DepthAnythingV2 sizes file ({e})") from None


def file_config(path: str, sizes: str | None = None):
  """The DepthConfig recorded for a weight file: from `sizes` (a JSON path) or the JSON beside
  the file (`sizes_path`), else None (a released variant, told by its shapes)."""
  sizes = sizes or (sizes_path(path) if os.path.isfile(sizes_path(path)) else None)
  return read_sizes_file(sizes) if sizes else None


def load_pytorch_weights(path: str, fmt: str | None = None, variant: str | None = None,
                         sizes: str | None = None):
  """A .pth/.pt/.safetensors file -> (Flax params, variant, format).

  sizes: the JSON holding a custom-size model's sizes (default: `sizes_path(path)` if present).
  """
  state_dict = read_state_dict(path)
  config = file_config(path, sizes)
  size = config.size if config is not None else None
  return from_state_dict(state_dict, fmt, variant, source=path, size=size)


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


def export_weights(params: dict, path: str, fmt: str | None = None, overwrite: bool = False,
                   config=None) -> str:
  """Write Flax params as a PyTorch-side file; returns the layout written.

  config: the model's DepthConfig; for a custom size it is also written to `sizes_path(path)`.
  """
  fmt = fmt or default_format(path)
  if fmt not in FORMATS:
    raise CheckpointError(f"unknown checkpoint format {fmt!r}; expected one of {FORMATS}")
  custom = config is not None and config.variant == "custom"
  if custom and os.path.exists(sizes_path(path)) and not overwrite:  # fail before the work
    raise CheckpointError(f"{sizes_path(path)}: already exists; pass --overwrite to replace it")
  size = config.sizes if config is not None else None
  state_dict = to_hf(params, size) if fmt == "hf" else to_original(params, size)
  write_state_dict(path, state_dict, overwrite=overwrite)
  if custom:
    write_json(sizes_path(path), config.to_dict(), overwrite=overwrite)
  return fmt


def convert_to_flax(src: str, dst: str, fmt: str | None = None, variant: str | None = None,
                    overwrite: bool = False, pos_embed_mode: str | None = None,
                    sizes: str | None = None):
  """PyTorch-side weights -> orbax checkpoint dir with its DepthConfig. Returns (config, fmt).

  sizes: JSON with a custom-size model's DepthConfig (default: `sizes_path(src)` if present); its
  pos_embed_mode and input_size are kept unless `pos_embed_mode` is given.
  """
  import dataclasses
  from ois_jax import checkpoint
  from ois_jax.models.depth import DepthConfig
  if os.path.exists(dst) and checkpoint.is_checkpoint(dst) and not overwrite:  # fail before the work
    raise CheckpointError(f"{dst}: already holds a checkpoint; pass --overwrite to replace it")
  log.info("reading %s", src)
  recorded = file_config(src, sizes)
  params, variant, fmt = load_pytorch_weights(src, fmt, variant, sizes)
  log.info("converted %s layout, variant %s; saving %s", fmt, variant, dst)
  if recorded is not None:
    config = dataclasses.replace(recorded, pos_embed_mode=pos_embed_mode or recorded.pos_embed_mode)
  else:
    config = DepthConfig(variant=variant, pos_embed_mode=pos_embed_mode or "original")
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
  fmt = export_weights(params, dst, fmt, overwrite=overwrite, config=config)
  if config.variant == "custom":
    log.info("wrote the model's sizes to %s (needed to read %s back)", sizes_path(dst), dst)
  if fmt == "hf" and os.path.basename(dst) == "model.safetensors":
    config_path = os.path.join(os.path.dirname(os.path.abspath(dst)), "config.json")
    if overwrite or not os.path.exists(config_path):
      write_json(config_path, hf_config(config.sizes), overwrite=True)
      log.info("wrote %s", config_path)
  log.info("wrote %s (%s layout, variant %s)", dst, fmt, config.variant)
  return fmt
