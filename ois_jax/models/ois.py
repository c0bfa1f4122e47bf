"""The OIS model: frozen DAv2 encoder + depth head, prompt fusion, trainable DPT segmentation head.

Split API: `encode_image` runs once per image, `decode` once per click.

encode_image (per image; images (B, S, S, 3) ImageNet-normalised):
  encoder -> 4 levels (B, g, g, D), g = S/14 (stop_gradient: frozen)
  depth head -> R (B, S, S) (stop_gradient: frozen), or the external depth map; min-max
    normalised per image to [0, 1] (OUR CHOICE, see order.py)
  image_proj: level 4 -> F (B, T, C), T = g*g (the image features the prompts attend to)
  seg_head.prepare: levels 1-3 -> skip features of refinenet1-3 (nothing there depends on clicks)
  = image_state(frozen_outputs(images)): `frozen_outputs` (encoder levels + normalised depth) is
  a function of the image alone, so training may cache it per image (train.cache_frozen_outputs)

decode (per click):
  D = dense disk maps -> stride-14 conv (B, T, C); F <- F + D                       [use_dense]
  S = sparse slot embeddings (B, 48, C); 3 blocks of object-aware attention (previous mask),
    order-aware attention (order maps Eq. 1-2), FFN, each + LayerNorm               [use_sparse]
  OUR CHOICE (the paper only says "the enhanced features are passed through a decoder"):
    F <- LN(F + CrossAttn(queries F + PE, keys/values S))                          [use_sparse]
    level4' = level4 + out_proj(LN(F))   (C -> D; residual on the encoder's level 4 so the
      depth-initialised DPT head starts from features it knows)
  OUR CHOICE, off by default (`fine_prompt_levels` = k > 0): the prompts also reach the k finest
    skip levels (4g, 2g, g): each level's positions cross-attend to S and the disk maps resized
    to its grid are convolved, both added to the skip (attention.SkipPromptFusion); with
    `fine_order` that attention is order-aware, Eq. 3 with the order maps on the level's grid
  seg_head.finish(level4', skips) -> logits (B, S, S) float32

Ablations (configs/common.py `model`): use_order, use_object, use_sparse, use_dense,
block_order, order_maps, depth_source ("head" | "external"), backbone ("dav2" | "plain_vit"),
fine_prompt_levels, fine_order.
A disabled path has no parameters. A plain ViT has no depth decoder, so it needs
depth_source="external". Parameters under 'encoder' and 'depth_head' (and the fixed Fourier
matrix) are frozen: `trainable_mask` marks them False for optax.

Precision (`model.dtype`): parameters, hence gradients and optimizer state, are float32. With
"bfloat16" the convolutions, projections and MLPs compute in bfloat16; the encoder's residual
stream, LayerNorm statistics, attention logits and softmax, depth, order maps and the output
logits stay float32 (and the loss is float32). `model.attention` picks the encoder's
self-attention implementation (vit.self_attention).
"""

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.configs import common
from ois_jax.errors import CheckpointError
from ois_jax import geometry
from ois_jax.geometry import PATCH_SIZE
from ois_jax.models import dpt, fast_init, order, plain_vit, prompts, vit
from ois_jax.models.attention import LAYER_NORM_EPS, CrossAttention, PromptBlock, SkipPromptFusion
from ois_jax.models.seg_head import SegmentationHead

FROZEN_KEYS = ("encoder", "depth_head")
SKIP_KEYS = ("skip1", "skip2", "skip3")  # the segmentation head's skip levels, finest first
# Keys of the config's `model` section that say how training starts, not what the model is.
INIT_KEYS = ("depth_checkpoint",)


class _OISConfigMethods:
  """The behaviour of OISConfig; its fields are made from the schema below."""

  @classmethod
  def from_config(cls, cfg: Any) -> "OISConfig":
    """From an ml_collections ConfigDict / dict (the `model` section).

    An unknown key is an error naming the closest known key (a typo must not pass silently);
    INIT_KEYS are accepted and ignored (they matter to training only).
    """
    if isinstance(cfg, OISConfig):
      return cfg
    given = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    d = {**common.base_config().model.to_dict(), **given}
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names) - set(INIT_KEYS))
    if unknown:
      import difflib
      hints = []
      for key in unknown:
        close = difflib.get_close_matches(key, names + list(INIT_KEYS), n=1)
        hints.append(f"model.{key}" + (f" (did you mean model.{close[0]}?)" if close else ""))
      raise ValueError(f"unknown config key {', '.join(hints)}")
    kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in d.items() if k in names}
    c = cls(**kwargs)
    c.validate()
    return c

  def validate(self):
    choices = {"backbone": ("dav2", "plain_vit"), "depth_source": ("head", "external"),
               "block_order": ("object_first", "order_first"),
               "order_maps": ("both", "positive", "negative"), "dtype": ("float32", "bfloat16"),
               "attention": vit.ATTENTION_IMPLEMENTATIONS}
    for key, allowed in choices.items():
      if getattr(self, key) not in allowed:
        raise ValueError(f"model.{key} must be one of {allowed}, got {getattr(self, key)!r}")
    if self.encoder not in (*vit.VARIANTS, "custom"):
      raise ValueError(f"model.encoder must be one of {sorted(vit.VARIANTS)} or 'custom', got {self.encoder!r}")
    if self.input_size % PATCH_SIZE:
      raise ValueError(f"model.input_size {self.input_size} is not a multiple of the patch size {PATCH_SIZE}")
    if self.backbone == "plain_vit" and self.depth_source != "external":
      raise ValueError("model.backbone='plain_vit' has no depth decoder: set model.depth_source='external'")
    if not (self.use_sparse or self.use_dense):
      raise ValueError("model.use_sparse and model.use_dense are both False: the clicks would reach nothing")
    if not 0 <= self.fine_prompt_levels <= len(SKIP_KEYS):
      raise ValueError(f"model.fine_prompt_levels must be 0-{len(SKIP_KEYS)} (skip levels that also "
                       f"get the prompts), got {self.fine_prompt_levels!r}")
    if self.fine_order and not (self.fine_prompt_levels and self.use_sparse):
      raise ValueError("model.fine_order makes the finer skip levels' attention to the clicks "
                       "order-aware: it needs model.fine_prompt_levels > 0 and model.use_sparse")
    if self.prompt_dim % self.num_heads or self.prompt_dim % 2:
      raise ValueError(f"model.prompt_dim {self.prompt_dim} must be even and divisible by num_heads {self.num_heads}")

  @property
  def encoder_dims(self) -> tuple[int, int, int, tuple[int, ...]]:
    """(embed_dim, depth, num_heads, intermediate_layers)."""
    if self.encoder == "custom":
      return self.encoder_embed_dim, self.encoder_depth, self.encoder_num_heads, self.encoder_layers
    v = vit.VARIANTS[self.encoder]
    return v.embed_dim, v.depth, v.num_heads, v.intermediate_layers

  @property
  def head_sizes(self) -> tuple[int, tuple[int, ...]]:
    if self.encoder == "custom":
      return self.head_features, self.head_out_channels
    return dpt.HEAD_SIZES[self.encoder]

  @property
  def grid(self) -> int:
    return self.input_size // PATCH_SIZE

  @property
  def disk_radius_px(self) -> float:
    """The click disks' radius in model pixels."""
    return prompts.disk_radius(self.disk_radius, self.input_size)

  @property
  def num_slots(self) -> int:
    return self.num_positive_slots + self.num_negative_slots


def _schema_fields() -> list[tuple[str, type]]:
  """(key, type) of each key of the schema's `model` section (configs/common.py), in its order;
  lists become tuples so that the config is hashable (a static argument of jit and of flax)."""
  model = common.base_config().model
  return [(key, tuple if isinstance(value, (list, tuple)) else type(value))
          for key, value in model.items() if key not in INIT_KEYS]


# Hashable copy of the config's `model` section. The keys, their meaning and their defaults are
# declared once, in configs/common.py: this class takes its fields from there, and `from_config`
# fills the keys a config leaves out.
OISConfig = dataclasses.make_dataclass("OISConfig", _schema_fields(), bases=(_OISConfigMethods,),
                                       frozen=True)
OISConfig.__module__ = __name__
OISConfig.__doc__ = ("Hashable copy of the config's `model` section; fields: the keys of "
                     "configs/common.py's `model` (less INIT_KEYS).")


class OIS(nn.Module):
  """Order-aware interactive segmentation. Use via `encode_image` / `decode` below."""
  config: OISConfig

  def setup(self):
    c = self.config
    dtype = jnp.dtype(c.dtype)
    embed_dim, depth, heads, layers = c.encoder_dims
    features, out_channels = c.head_sizes
    if c.backbone == "dav2":
      self.encoder = vit.DinoVisionTransformer(embed_dim, depth, heads, layers, dtype=dtype,
                                               attention=c.attention)
    else:
      self.encoder = plain_vit.PlainViT(embed_dim, depth, heads, layers, dtype=dtype, attention=c.attention)
    if c.depth_source == "head":
      self.depth_head = dpt.DPTHead(features, out_channels, 1, True, dtype)
    self.seg_head = SegmentationHead(features, out_channels, dtype)
    self.image_proj = nn.Dense(c.prompt_dim, dtype=dtype)
    if c.use_dense:
      self.dense_prompts = prompts.DensePromptEncoder(
          c.prompt_dim, c.input_size, c.disk_radius_px, c.num_positive_slots, dtype)
    if c.use_sparse:
      self.pos_encoding = prompts.PositionEncoding(c.prompt_dim, c.input_size)
      self.sparse_prompts = prompts.SparsePromptEncoder(c.prompt_dim, c.input_size, c.num_positive_slots)
      self.blocks = [PromptBlock(c.prompt_dim, c.num_heads, c.mlp_dim, c.use_object, c.use_order,
                                 c.block_order, c.order_sigma_init, dtype)
                     for _ in range(c.num_blocks)]
      self.token_attn = CrossAttention(c.prompt_dim, c.num_heads, dtype)
      self.token_norm = nn.LayerNorm(LAYER_NORM_EPS, dtype=dtype)
    self.out_norm = nn.LayerNorm(LAYER_NORM_EPS, dtype=dtype)
    self.out_proj = nn.Dense(embed_dim, dtype=dtype)
    fine_sigma = c.order_sigma_init if self.fine_order_active else None
    self.skip_prompts = [SkipPromptFusion(c.prompt_dim, c.num_heads, features, dtype, fine_sigma)
                         for _ in range(c.fine_prompt_levels)]

  @property
  def fine_order_active(self) -> bool:
    """The skip levels' attention is order-aware (`fine_order`; off in the use_order ablation)."""
    return self.config.fine_order and self.config.use_order

  def encode_image(self, images, depth=None):
    """images (B, S, S, 3) normalised; depth (B, S, S) iff depth_source == "external".

    Returns the image state: depth (B, S, S) f32 in [0, 1], features (B, T, C), level4
    (B, g, g, D), skip1 (B, 4g, 4g, F), skip2 (B, 2g, 2g, F), skip3 (B, g, g, F).
    """
    return self.image_state(self.frozen_outputs(images, depth))

  def frozen_outputs(self, images, depth=None):
    """The frozen part of `encode_image` (encoder, depth head), under stop_gradient.

    Returns {'levels': 4 encoder levels (B, g, g, D), 'depth': (B, S, S) f32 in [0, 1]}: a
    function of the image (and external depth) alone, so training may compute it once per image.
    """
    c = self.config
    b, s = images.shape[0], c.input_size
    if images.shape[1:] != (s, s, 3):
      raise ValueError(f"images must be (B, {s}, {s}, 3), got {images.shape}")
    feats = [jax.lax.stop_gradient(f) for f in self.encoder(images)]
    if c.depth_source == "head":
      depth = jax.lax.stop_gradient(self.depth_head(feats)[..., 0].astype(jnp.float32))
    elif depth is None or depth.shape != (b, s, s):
      raise ValueError(f"depth_source='external' needs depth of shape ({b}, {s}, {s}), got "
                       f"{None if depth is None else depth.shape}")
    return {"levels": tuple(feats), "depth": order.normalize_depth(depth)}

  def image_state(self, frozen):
    """The trainable part of `encode_image`: image_proj and seg_head.prepare on `frozen_outputs`."""
    c = self.config
    feats = frozen["levels"]
    b = feats[3].shape[0]
    state = {"depth": frozen["depth"],
             "features": self.image_proj(feats[3]).reshape(b, c.grid**2, c.prompt_dim),
             "level4": feats[3]}
    state.update(self.seg_head.prepare(*feats[:3]))
    return state

  def decode(self, image_state, clicks: prompts.Clicks, prev_mask, has_prev):
    """image_state from encode_image; clicks (B, 48); prev_mask (B, S, S) probabilities;
    has_prev (B,) bool. Returns logits (B, S, S) float32."""
    c = self.config
    b, g, npos = prev_mask.shape[0], c.grid, c.num_positive_slots
    feats = image_state["features"]  # (B, T, C)
    s = None
    if c.use_dense:
      feats = feats + self.dense_prompts(clicks).reshape(b, g * g, c.prompt_dim)
    if c.use_sparse:
      token_pe = self.pos_encoding(prompts.grid_coords(g)).astype(feats.dtype)  # (T, C)
      s = self.sparse_prompts(clicks, self.pos_encoding(clicks.coords)).astype(feats.dtype)
      order_map = allowed = None
      if c.use_order:
        order_map = order.order_maps_tokens(image_state["depth"], clicks.coords, clicks.valid,
                                            npos, c.order_maps)
      if c.use_object:
        allowed = order.object_regions(prev_mask, has_prev, npos, c.num_negative_slots,
                                       c.prev_mask_threshold)
      keys = feats + token_pe
      for block in self.blocks:
        s = block(s, keys, feats, order_map, allowed)
      feats = self.token_norm(feats + self.token_attn(keys, s, s))
    level4 = image_state["level4"] + self.out_proj(self.out_norm(feats)).reshape(b, g, g, -1)
    skips = {k: image_state[k] for k in SKIP_KEYS}
    if self.skip_prompts:
      maps = (prompts.disk_maps(clicks, c.input_size, c.disk_radius_px, npos)
              if c.use_dense else None)
      for key, fuse in zip(SKIP_KEYS, self.skip_prompts):
        n = skips[key].shape[1]
        position = (self.pos_encoding(prompts.grid_coords(n, c.input_size / n))
                    if c.use_sparse else None)
        level_maps = None if maps is None else geometry.resize_bilinear_align_corners(maps, (n, n))
        level_order = (order.order_maps_grid(image_state["depth"], clicks.coords, clicks.valid,
                                             npos, n, c.order_maps)
                       if self.fine_order_active else None)
        skips[key] = fuse(skips[key], s, position, level_maps, level_order)
    return self.seg_head.finish(level4, skips)[..., 0].astype(jnp.float32)

  def __call__(self, images, clicks, prev_mask, has_prev, depth=None):
    return self.decode(self.encode_image(images, depth), clicks, prev_mask, has_prev)


def build_model(cfg_model) -> OIS:
  """The OIS module from the config's `model` section (ConfigDict, dict or OISConfig)."""
  return OIS(OISConfig.from_config(cfg_model))


def _dummy_inputs(model: OIS, batch: int = 1):
  c = model.config
  s = c.input_size
  depth = jnp.zeros((batch, s, s)) if c.depth_source == "external" else None
  return (jnp.zeros((batch, s, s, 3)), prompts.Clicks.empty(batch, c.num_positive_slots, c.num_negative_slots),
          jnp.zeros((batch, s, s)), jnp.ones((batch,), bool), depth)


def param_shapes(model: OIS) -> dict:
  """The parameters' shapes and dtypes (jax.ShapeDtypeStruct leaves), without computing them."""
  return jax.eval_shape(lambda r: model.init(r, *_dummy_inputs(model))["params"], jax.random.key(0))


def init_params(model: OIS, rng: jax.Array) -> dict:
  """Random parameters (the inner dict of flax's {'params': ...}), float32."""
  return _jitted_init(model)(rng)


@functools.lru_cache(maxsize=16)
def _jitted_init(model: OIS):
  """One compiled init per model config (`fast_init.rbg_init`: fast to compile on CPU)."""
  return jax.jit(lambda rng: fast_init.rbg_init(model, rng, *_dummy_inputs(model)))


def encode_image(model: OIS, params: dict, images, depth=None) -> dict:
  """Per-image state (see OIS.encode_image)."""
  return model.apply({"params": params}, images, depth, method=OIS.encode_image)


def frozen_outputs(model: OIS, params: dict, images, depth=None) -> dict:
  """The encoder levels and normalised depth (see OIS.frozen_outputs); only the frozen params are read."""
  return model.apply({"params": params}, images, depth, method=OIS.frozen_outputs)


def image_state(model: OIS, params: dict, frozen: dict) -> dict:
  """The image state from `frozen_outputs` (see OIS.image_state): what `encode_image` returns."""
  return model.apply({"params": params}, frozen, method=OIS.image_state)


def decode(model: OIS, params: dict, image_state: dict, clicks: prompts.Clicks, prev_mask=None,
           has_prev=None):
  """Logits (B, S, S) float32. prev_mask None -> first round; has_prev None -> True if a mask is given."""
  b = image_state["depth"].shape[0]
  s = model.config.input_size
  if prev_mask is None:
    prev_mask, has_prev = jnp.zeros((b, s, s), jnp.float32), jnp.zeros((b,), bool)
  elif has_prev is None:
    has_prev = jnp.ones((b,), bool)
  return model.apply({"params": params}, image_state, clicks, prev_mask, has_prev, method=OIS.decode)


def _is_trainable(path) -> bool:
  keys = [getattr(p, "key", getattr(p, "name", None)) for p in path]
  if keys and keys[0] in FROZEN_KEYS:
    return False
  return not (len(keys) >= 2 and keys[-2] == "pos_encoding" and keys[-1] == "gaussian")


def trainable_mask(params: dict):
  """Same tree as params: False under 'encoder', 'depth_head' and for the fixed Fourier matrix."""
  return jax.tree_util.tree_map_with_path(lambda path, _: _is_trainable(path), params)


def check_params(model: OIS, params: dict) -> None:
  """CheckpointError listing every missing, unexpected and mis-shaped parameter of `params` for
  `model` (e.g. weights saved for another config)."""
  expected = jax.eval_shape(functools.partial(init_params, model), jax.random.key(0))
  errors = []
  _check_tree(expected, params, "params", errors, "the given params")
  if errors:  # one line: the first few problems name what differs
    shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
    raise CheckpointError(f"the params do not fit this model config ({len(errors)} problems: {shown})")


def init_from_depth(params: dict, depth_params: dict) -> dict:
  """Load DepthAnythingV2 weights: encoder, frozen depth head, and the seg head (same shapes).

  depth_params: {'pretrained' (or 'encoder'): ViT params, 'depth_head': DPT head params}, e.g.
  from a converted DAv2 checkpoint. Every tensor's shape is checked; all mismatches are
  reported in one CheckpointError. Returns a new params dict.
  """
  enc = depth_params.get("pretrained", depth_params.get("encoder"))
  head = depth_params.get("depth_head")
  if enc is None or head is None:
    raise CheckpointError(f"depth params need 'pretrained' (or 'encoder') and 'depth_head', got "
                          f"{sorted(depth_params)}")
  out = dict(params)
  errors = []
  targets = [("encoder", enc), ("seg_head", head)]
  if "depth_head" in params:
    targets.append(("depth_head", head))
  for key, source in targets:
    out[key] = _copy_checked(params[key], source, key, errors)
  if errors:
    raise CheckpointError("DAv2 weights do not fit this OIS config:\n  " + "\n  ".join(errors[:20])
                          + (f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""))
  return out


def init_from_depth_checkpoint(params: dict, path: str) -> dict:
  """`init_from_depth` with DAv2 weights from a converted checkpoint folder or a .pth / .safetensors file."""
  from ois_jax.convert import load_depth_weights  # lazy: orbax and the tables are slow to import
  depth_params, _ = load_depth_weights(path)
  return init_from_depth(params, depth_params)


def _copy_checked(target, source, prefix, errors):
  """`source`'s values in `target`'s tree and dtypes, after `_check_tree` (target unchanged on errors)."""
  before = len(errors)
  _check_tree(target, source, prefix, errors, "the DAv2 weights")
  if len(errors) > before:
    return target
  flat_s = flatten_params(source)
  return jax.tree_util.tree_map_with_path(
      lambda path, t: jnp.asarray(flat_s[_path_str(path)], jnp.asarray(t).dtype), target)


def _check_tree(target, source, prefix, errors, describe):
  """Appends to `errors` every key missing from / unexpected in `source`, and every shape that
  differs from `target`'s (both nested dicts of arrays or ShapeDtypeStructs)."""
  flat_t = flatten_params(target)
  flat_s = flatten_params(source)
  for k in sorted(set(flat_t) - set(flat_s)):
    errors.append(f"{prefix}/{k}: missing in {describe}")
  for k in sorted(set(flat_s) - set(flat_t)):
    errors.append(f"{prefix}/{k}: unexpected in {describe}")
  for k in sorted(set(flat_t) & set(flat_s)):
    if tuple(np.shape(flat_s[k])) != tuple(np.shape(flat_t[k])):
      errors.append(f"{prefix}/{k}: shape {np.shape(flat_s[k])} in the weights, "
                    f"{np.shape(flat_t[k])} in the model")


def _path_str(path) -> str:
  return "/".join(str(getattr(p, "key", getattr(p, "name", p))) for p in path)


def flatten_params(tree, prefix: str = "") -> dict:
  """A nested params dict -> {'a/b/kernel': leaf}, the keys error messages and tests name."""
  if hasattr(tree, "items"):
    out = {}
    for k, v in tree.items():
      out.update(flatten_params(v, f"{prefix}{k}/"))
    return out
  return {prefix.rstrip("/"): tree}
