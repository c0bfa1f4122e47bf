"""DepthAnythingV2 state dicts (original `.pth` layout and Hugging Face layout) <-> Flax params.

The expected key set and every expected shape come from the Flax model itself (`jax.eval_shape`
of `DepthAnythingV2.init`) pushed through the tables, so the tables cannot silently drift from the
model. Every tensor is shape-checked; all missing, unexpected and mis-shaped keys are reported in
one CheckpointError. State dicts here are `dict[str, np.ndarray]` (no torch needed).

A model is named by its variant (vits, vitb, vitl) or, for a custom size, by its `DepthSize`
(`size=`): shapes give the widths and the block count, but not the number of attention heads nor
the intermediate layers, so a custom-size file needs its sizes from elsewhere (the `.json` that
`ois_jax.convert.export_weights` writes beside it).
"""

import functools
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.convert import tables
from ois_jax.convert.files import sizes_path
from ois_jax.errors import CheckpointError
from ois_jax.models.depth import DepthAnythingV2, DepthSize
from ois_jax.models.vit import VARIANTS

FORMATS = ("original", "hf")
_FORMAT_PREFIXES = {"original": ("pretrained.", "depth_head."), "hf": ("backbone.", "neck.", "head.")}


# --- expected keys and shapes --------------------------------------------------------------------
def as_size(variant: "str | DepthSize") -> DepthSize:
  """A variant name or a DepthSize -> the DepthSize."""
  return variant if isinstance(variant, DepthSize) else DepthSize.of_variant(variant)


def size_label(size: DepthSize) -> str:
  """'vits', or 'custom (embed dim 32, 4 blocks)' for a custom size."""
  name = size.variant()
  return name if name != "custom" else f"custom (embed dim {size.embed_dim}, {size.depth} blocks)"


def expected_flax_shapes(variant: "str | DepthSize") -> dict[str, tuple[int, ...]]:
  """'pretrained/blocks_0/attn/qkv/kernel' -> shape, for every parameter of the variant / size."""
  return _flax_shapes(as_size(variant))


@functools.lru_cache(maxsize=None)
def _flax_shapes(size: DepthSize) -> dict[str, tuple[int, ...]]:
  model = DepthAnythingV2("custom", size=size)
  # Parameter shapes do not depend on the input size; a 2x2 token grid traces fast.
  tree = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 3)))["params"]
  return {k: tuple(v.shape) for k, v in flax.traverse_util.flatten_dict(tree, sep="/").items()}


def _shape_view(shape):
  """A zero-byte array of `shape` on which the table transforms compute output shapes."""
  return np.broadcast_to(np.zeros((), np.float32), shape)


def expected_original_shapes(variant: "str | DepthSize") -> dict[str, tuple[int, ...]]:
  return _original_shapes(as_size(variant))


@functools.lru_cache(maxsize=None)
def _original_shapes(size: DepthSize) -> dict[str, tuple[int, ...]]:
  views = {k: _shape_view(s) for k, s in _flax_shapes(size).items()}
  return {k: tuple(v.shape) for k, v in _flax_to_original(views).items()}


def expected_hf_shapes(variant: "str | DepthSize") -> dict[str, tuple[int, ...]]:
  return _hf_shapes(as_size(variant))


@functools.lru_cache(maxsize=None)
def _hf_shapes(size: DepthSize) -> dict[str, tuple[int, ...]]:
  views = {k: _shape_view(s) for k, s in _original_shapes(size).items()}
  return {k: tuple(v.shape) for k, v in _original_to_hf(views).items()}


def _check_keys(given: dict, expected: dict, source: str, layout: str, variant: str) -> None:
  """One CheckpointError listing every missing, unexpected and mis-shaped key."""
  missing = sorted(set(expected) - set(given))
  unexpected = sorted(set(given) - set(expected))
  mismatched = sorted(k for k in set(given) & set(expected)
                      if tuple(np.shape(given[k])) != tuple(expected[k]))
  if not (missing or unexpected or mismatched):
    return
  lines = [f"{source}: does not match the {layout} DepthAnythingV2 {variant} layout "
           f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} wrong shape)"]
  lines += [f"  missing key: {k} {tuple(expected[k])}" for k in missing]
  lines += [f"  unexpected key: {k} {tuple(np.shape(given[k]))}" for k in unexpected]
  lines += [f"  wrong shape: {k} is {tuple(np.shape(given[k]))}, expected {tuple(expected[k])}"
            for k in mismatched]
  raise CheckpointError("\n".join(lines))


# --- detection -------------------------------------------------------------------------------------
def detect_format(state_dict: dict, source: str = "state dict") -> str:
  """'original' (pretrained.*, depth_head.*) or 'hf' (backbone.*, neck.*, head.*)."""
  counts = {f: sum(k.startswith(p) for k in state_dict) for f, p in _FORMAT_PREFIXES.items()}
  fmt = max(counts, key=counts.get)
  if counts[fmt] == 0 or min(counts.values()) > 0:
    sample = ", ".join(sorted(state_dict)[:5])
    raise CheckpointError(f"{source}: cannot tell the checkpoint layout from its keys ({sample}, ...); "
                          "expected original DAv2 keys (pretrained.*, depth_head.*) or Hugging Face "
                          "keys (backbone.*, neck.*, head.*)")
  return fmt


def detect_variant(state_dict: dict, fmt: str) -> tuple[str | None, str]:
  """(variant or None, a description of what was found) from the embed dim and block count."""
  if fmt == "original":
    token_key, block_prefix = "pretrained.cls_token", "pretrained.blocks."
  else:
    token_key, block_prefix = "backbone.embeddings.cls_token", "backbone.encoder.layer."
  if token_key not in state_dict:
    return None, f"no {token_key}"
  dim = int(np.shape(state_dict[token_key])[-1])
  depth = len({k[len(block_prefix):].split(".")[0] for k in state_dict if k.startswith(block_prefix)})
  found = f"embed dim {dim}, {depth} blocks"
  for name, v in VARIANTS.items():
    if v.embed_dim == dim and v.depth == depth:
      return name, found
  return None, found


def _resolve_size(state_dict, fmt, variant, size, source) -> DepthSize:
  """The DepthSize a state dict is read as: `size` when given (checked against the tensors),
  else the released variant asked for or detected."""
  if size is None:
    if variant == "custom":
      raise CheckpointError(f"{source}: variant 'custom' needs its sizes (the .json written beside "
                            "the file by `ois-jax convert`, or --sizes FILE)")
    return DepthSize.of_variant(_resolve_variant(state_dict, fmt, variant, source))
  if variant not in (None, "custom", size.variant()):
    raise CheckpointError(f"{source}: the sizes given are those of {size_label(size)}, but variant "
                          f"{variant} was asked for")
  _, found = detect_variant(state_dict, fmt)
  if found != f"embed dim {size.embed_dim}, {size.depth} blocks":
    raise CheckpointError(f"{source}: holds a DepthAnythingV2 with {found}, but its sizes say "
                          f"embed dim {size.embed_dim}, {size.depth} blocks")
  return size


def _resolve_variant(state_dict, fmt, variant, source) -> str:
  detected, found = detect_variant(state_dict, fmt)
  known = ", ".join(f"{n} ({v.embed_dim}/{v.depth})" for n, v in VARIANTS.items())
  if variant is not None:
    if variant not in VARIANTS:
      raise CheckpointError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    if detected is not None and detected != variant:
      raise CheckpointError(f"{source}: holds a DepthAnythingV2 {detected} checkpoint ({found}), "
                            f"but variant {variant} was asked for")
    if detected is None and "embed dim" in found:
      raise CheckpointError(f"{source}: does not look like DepthAnythingV2 {variant} ({found}; "
                            f"known variants: {known})")
    return variant
  if detected is None and "embed dim" in found:
    raise CheckpointError(f"{source}: holds a DepthAnythingV2 of no released size ({found}; released: "
                          f"{known}); its number of attention heads and intermediate layers are not in "
                          f"the weights: put the {os.path.basename(sizes_path(source))} that `ois-jax "
                          "convert` writes with them beside the file, or pass --sizes FILE")
  if detected is None:
    raise CheckpointError(f"{source}: cannot determine the DepthAnythingV2 variant ({found}; "
                          f"known variants: {known}); pass --variant")
  return detected


# --- layout transforms (no checking) ----------------------------------------------------------------
def _original_to_flax(state_dict: dict) -> dict:
  flat = {}
  for key, value in state_dict.items():
    path, rule = tables.apply_first(tables.ORIGINAL_TO_FLAX, key)
    flat[path] = rule.transform.to_flax(value)
  return flat


def _flax_to_original(flat: dict) -> dict:
  out = {}
  for path, value in flat.items():
    key, rule = tables.apply_first(tables.ORIGINAL_TO_FLAX, path, backward=True)
    if key is None:
      raise CheckpointError(f"Flax parameter {path} has no DepthAnythingV2 checkpoint key")
    out[key] = rule.transform.to_torch(value)
  return out


def _original_to_hf(state_dict: dict) -> dict:
  out = {}
  for key, value in state_dict.items():
    qkv_keys = tables.hf_qkv_keys(key)
    if qkv_keys is not None:
      out.update(zip(qkv_keys, np.split(value, 3, axis=0)))
      continue
    hf_key, _ = tables.apply_first(tables.HF_TO_ORIGINAL, key, backward=True)
    if hf_key is None:
      raise CheckpointError(f"original key {key} has no Hugging Face counterpart")
    out[hf_key] = value
  return out


def _hf_to_original(state_dict: dict) -> dict:
  out, qkv = {}, {}
  for key, value in state_dict.items():
    target = tables.hf_qkv_target(key)
    if target is not None:
      qkv.setdefault(target[0], [None] * 3)[target[1]] = value
      continue
    original_key, _ = tables.apply_first(tables.HF_TO_ORIGINAL, key)
    out[original_key] = value
  for key, parts in qkv.items():
    out[key] = np.concatenate(parts, axis=0)
  return out


def _to_float32(state_dict: dict) -> dict:
  return {k: np.asarray(v, np.float32) for k, v in state_dict.items()}


# --- public API ------------------------------------------------------------------------------------
def from_original(state_dict: dict, variant: str | None = None, source: str = "state dict",
                  size: DepthSize | None = None) -> tuple[dict, str]:
  """Original DAv2 state dict (pretrained.*, depth_head.*) -> (Flax params, variant).

  size: the sizes of a custom-size model (variant 'custom'); checked against every tensor.
  """
  size = _resolve_size(state_dict, "original", variant, size, source)
  _check_keys(state_dict, _original_shapes(size), source, "original", size_label(size))
  flat = _original_to_flax(_to_float32(state_dict))
  return flax.traverse_util.unflatten_dict(flat, sep="/"), size.variant()


def from_hf(state_dict: dict, variant: str | None = None, source: str = "state dict",
            size: DepthSize | None = None) -> tuple[dict, str]:
  """Hugging Face DepthAnythingForDepthEstimation state dict -> (Flax params, variant).

  Accepts the Hub/save_pretrained names (attention.attention.query, attention.output.dense) and
  transformers 5's in-memory names (attention.q_proj, attention.o_proj).
  """
  state_dict = {tables.normalize_hf_key(k): v for k, v in state_dict.items()}
  size = _resolve_size(state_dict, "hf", variant, size, source)
  _check_keys(state_dict, _hf_shapes(size), source, "Hugging Face", size_label(size))
  return from_original(_hf_to_original(_to_float32(state_dict)), size.variant(), source, size)


def from_state_dict(state_dict: dict, fmt: str | None = None, variant: str | None = None,
                    source: str = "state dict", size: DepthSize | None = None) -> tuple[dict, str, str]:
  """Either layout -> (Flax params, variant, format); `fmt` None detects it from the keys."""
  fmt = fmt or detect_format(state_dict, source)
  if fmt not in FORMATS:
    raise CheckpointError(f"unknown checkpoint format {fmt!r}; expected one of {FORMATS}")
  convert = from_original if fmt == "original" else from_hf
  params, variant = convert(state_dict, variant, source, size)
  return params, variant, fmt


def params_variant(params: dict) -> str:
  """The variant of a Flax DepthAnythingV2 params tree, from its embed dim and block count."""
  try:
    vit = params["pretrained"]
    dim = int(np.shape(vit["cls_token"])[-1])
    depth = sum(k.startswith("blocks_") for k in vit)
  except (KeyError, TypeError):
    raise CheckpointError("params are not a DepthAnythingV2 tree ({'pretrained': ..., 'depth_head': ...})") \
        from None
  for name, v in VARIANTS.items():
    if v.embed_dim == dim and v.depth == depth:
      return name
  raise CheckpointError(f"params do not match a released variant (embed dim {dim}, {depth} blocks); "
                        "pass the sizes of a custom-size model (size=DepthSize(...))")


def _checked_flat(params: dict, variant: "str | DepthSize | None") -> dict:
  size = as_size(variant or params_variant(params))
  flat = flax.traverse_util.flatten_dict(params, sep="/")
  _check_keys(flat, _flax_shapes(size), "Flax params", "Flax", size_label(size))
  return {k: np.asarray(v) for k, v in flat.items()}


def to_original(params: dict, variant: "str | DepthSize | None" = None) -> dict[str, np.ndarray]:
  """Flax params -> original DAv2 state dict of contiguous NumPy arrays.

  variant: a variant name or the DepthSize of a custom-size model (None: detected, released sizes).
  """
  flat = _checked_flat(params, variant)
  return {k: np.ascontiguousarray(v) for k, v in _flax_to_original(flat).items()}


def to_hf(params: dict, variant: "str | DepthSize | None" = None) -> dict[str, np.ndarray]:
  """Flax params -> Hugging Face state dict (Hub names) of contiguous NumPy arrays."""
  flat = _checked_flat(params, variant)
  return {k: np.ascontiguousarray(v) for k, v in _original_to_hf(_flax_to_original(flat)).items()}


def hf_config(variant: "str | DepthSize") -> dict:
  """config.json for transformers' DepthAnythingForDepthEstimation of this variant (relative depth)."""
  v = as_size(variant)
  return {
      "architectures": ["DepthAnythingForDepthEstimation"],
      "model_type": "depth_anything",
      "backbone_config": {
          "model_type": "dinov2", "hidden_size": v.embed_dim, "num_hidden_layers": v.depth,
          "num_attention_heads": v.num_heads, "image_size": 518, "patch_size": 14,
          "out_indices": [i + 1 for i in v.intermediate_layers], "apply_layernorm": True,
          "reshape_hidden_states": False, "layerscale_value": 1.0, "mlp_ratio": 4,
      },
      "reassemble_hidden_size": v.embed_dim,
      "neck_hidden_sizes": list(v.out_channels),
      "fusion_hidden_size": v.features,
      "head_hidden_size": 32,
      "patch_size": 14,
      "reassemble_factors": [4, 2, 1, 0.5],
      "depth_estimation_type": "relative",
      "max_depth": 1,
  }
