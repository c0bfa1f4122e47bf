"""DINOv2 vision transformer, as used by DepthAnythingV2 (no register tokens).

Parameter names mirror the original checkpoint keys (`pretrained.blocks.{i}.attn.qkv`
-> `blocks_{i}/attn/qkv`), so the converter is a table. Input is NHWC, already
normalised; output is the four intermediate layers used by the DPT heads.
"""

import contextlib
import contextvars
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.models import resize

LAYER_NORM_EPS = 1e-6
PATCH_SIZE = 14
PRETRAIN_GRID = 37  # DINOv2 position table: 518 / 14 = 37 patches per side.


@dataclasses.dataclass(frozen=True)
class ViTVariant:
  embed_dim: int
  depth: int
  num_heads: int
  intermediate_layers: tuple[int, ...]


VARIANTS = {
    "vits": ViTVariant(384, 12, 6, (2, 5, 8, 11)),
    "vitb": ViTVariant(768, 12, 12, (2, 5, 8, 11)),
    "vitl": ViTVariant(1024, 24, 16, (4, 11, 17, 23)),
}


def interpolate_pos_embed(pos_embed: jnp.ndarray, grid_h: int, grid_w: int,
                          mode: str = "original") -> jnp.ndarray:
  """Resize the (1, 1 + 37*37, D) table to (1, 1 + grid_h*grid_w, D).

  mode="original": DINOv2/DAv2, bicubic with scale_factor=((g + 0.1) / 37) and
  coordinates mapped with 1 / scale_factor; skipped for a 37x37 grid.
  mode="hf": Hugging Face Dinov2, bicubic to exactly (grid_h, grid_w).
  """
  n = pos_embed.shape[1] - 1
  side = int(round(np.sqrt(n)))
  if grid_h == side and grid_w == side:
    return pos_embed
  cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:].reshape(side, side, -1)
  if mode == "original":
    h_mat = resize.bicubic_matrix(side, grid_h, (grid_h + 0.1) / side)
    w_mat = resize.bicubic_matrix(side, grid_w, (grid_w + 0.1) / side)
  elif mode == "hf":
    h_mat = resize.bicubic_matrix(side, grid_h)
    w_mat = resize.bicubic_matrix(side, grid_w)
  else:
    raise ValueError(f"unknown pos-embed interpolation mode {mode!r}; use 'original' or 'hf'")
  patch_pos = jnp.einsum("ah,bw,hwd->abd", jnp.asarray(h_mat), jnp.asarray(w_mat),
                         patch_pos.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
  patch_pos = patch_pos.reshape(1, grid_h * grid_w, -1).astype(pos_embed.dtype)
  return jnp.concatenate([cls_pos, patch_pos], axis=1)


class PatchEmbed(nn.Module):
  """14x14 patchify conv. (B, H, W, 3) -> (B, H/14, W/14, D)."""
  embed_dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    return nn.Conv(self.embed_dim, (PATCH_SIZE, PATCH_SIZE), strides=PATCH_SIZE,
                   padding="VALID", dtype=self.dtype, name="proj")(x)


# Size of one (rows, N) fp32 logits block in `blocked_attention`. Swept on the 2-core CPU at
# 518 px (N = 1370): 1.5, 2.5, 4 and 8 MB gave 0.99, 1.02, 0.86 and 0.91 s per ViT-S image.
ATTENTION_BLOCK_BYTES = 4_000_000


def plain_attention(q, k, v):
  """softmax(q k^T / sqrt(d)) v. q, k, v: (B, heads, N, hd) -> (B, heads, N, hd)."""
  logits = (q * q.shape[-1]**-0.5) @ k.swapaxes(-1, -2)  # (B, heads, N, N)
  weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
  return weights @ v


def blocked_attention(q, k, v, block_bytes: int = ATTENTION_BLOCK_BYTES):
  """`plain_attention`, one (head, query block) at a time. Same shapes, same values.

  XLA:CPU cannot fuse the two matmuls with the softmax, so the plain form streams the whole
  (B, heads, N, N) logits tensor (45 MB per ViT-S layer at 518) through memory several times;
  this loop keeps each (rows, N) block in cache and cuts a ViT-S depth pass at 518 px from
  about 1.0 s to 0.85 s on 2 cores. GPUs and TPUs keep the plain form (see `Attention`).
  """
  b, h, n, d = q.shape
  num_blocks = max(1, -(-n * n * 4 // block_bytes))
  rows = -(-n // num_blocks)
  pad = num_blocks * rows - n
  q_blocks = jnp.pad(q, ((0, 0), (0, 0), (0, pad), (0, 0))).reshape(b * h * num_blocks, rows, d)
  k, v = k.reshape(b * h, n, d), v.reshape(b * h, n, d)

  def one_block(args):
    q_block, head = args
    k_head = jax.lax.dynamic_index_in_dim(k, head, keepdims=False)
    v_head = jax.lax.dynamic_index_in_dim(v, head, keepdims=False)
    return plain_attention(q_block, k_head, v_head)

  heads = jnp.arange(b * h * num_blocks) // num_blocks
  out = jax.lax.map(one_block, (q_blocks, heads))  # (B * heads * blocks, rows, hd)
  return out.reshape(b, h, num_blocks * rows, d)[:, :, :n]


# "auto": blocked on CPU, plain elsewhere, picked when lowering; "xla": the plain formula on every
# platform, for graph exporters (ONNX has no form of lax.map under platform_dependent, and a
# symbolic batch gives lax.map a symbolic length). Read at trace time (see `attention_impl`).
_ATTENTION_IMPL = contextvars.ContextVar("ois_jax_attention_impl", default="auto")


@contextlib.contextmanager
def attention_impl(name: str):
  """Trace the ViT self-attention inside this block as `name` ("auto" | "xla")."""
  if name not in ("auto", "xla"):
    raise ValueError(f"attention implementation must be 'auto' or 'xla', got {name!r}")
  token = _ATTENTION_IMPL.set(name)
  try:
    yield
  finally:
    _ATTENTION_IMPL.reset(token)


class Attention(nn.Module):
  """Multi-head self-attention with a fused qkv projection. (B, N, D) -> (B, N, D)."""
  num_heads: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, n, d = x.shape
    head_dim = d // self.num_heads
    qkv = nn.Dense(3 * d, dtype=self.dtype, name="qkv")(x)
    # (3, B, heads, N, hd): batch dims leading, as DINOv2 does. XLA:CPU runs these batched
    # matmuls about 2x faster than jax.nn.dot_product_attention's (B, N, heads, hd) einsums.
    q, k, v = qkv.reshape(b, n, 3, self.num_heads, head_dim).transpose(2, 0, 3, 1, 4)
    if _ATTENTION_IMPL.get() == "xla":
      out = plain_attention(q, k, v)
    else:  # chosen when lowering: one jitted function serves CPU (blocked) and accelerators (plain)
      out = jax.lax.platform_dependent(q, k, v, cpu=blocked_attention, default=plain_attention)
    out = out.transpose(0, 2, 1, 3).reshape(b, n, d)  # (B, N, D)
    return nn.Dense(d, dtype=self.dtype, name="proj")(out)


class LayerScale(nn.Module):
  """Per-channel learned scale (DINOv2's ls1/ls2)."""

  @nn.compact
  def __call__(self, x):
    gamma = self.param("gamma", nn.initializers.constant(1e-5), (x.shape[-1],))
    return x * gamma.astype(x.dtype)


class Mlp(nn.Module):
  """fc1 -> exact GELU -> fc2."""
  hidden_dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = nn.gelu(nn.Dense(self.hidden_dim, dtype=self.dtype, name="fc1")(x), approximate=False)
    return nn.Dense(x.shape[-1], dtype=self.dtype, name="fc2")(h)


class Block(nn.Module):
  """Pre-norm transformer block with LayerScale."""
  num_heads: int
  mlp_ratio: float = 4.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    norm = lambda name: nn.LayerNorm(LAYER_NORM_EPS, dtype=self.dtype, name=name)
    x = x + LayerScale(name="ls1")(Attention(self.num_heads, self.dtype, name="attn")(norm("norm1")(x)))
    hidden = int(x.shape[-1] * self.mlp_ratio)
    x = x + LayerScale(name="ls2")(Mlp(hidden, self.dtype, name="mlp")(norm("norm2")(x)))
    return x


class DinoVisionTransformer(nn.Module):
  """DINOv2 ViT returning 4 normed intermediate layers without the class token.

  Attributes:
    embed_dim, depth, num_heads: the variant (see VARIANTS).
    intermediate_layers: block indices whose outputs are returned.
    pos_embed_mode: "original" (DAv2) or "hf" (Hugging Face) interpolation.
  """
  embed_dim: int = 384
  depth: int = 12
  num_heads: int = 6
  intermediate_layers: tuple[int, ...] = (2, 5, 8, 11)
  pos_embed_mode: str = "original"
  dtype: jnp.dtype = jnp.float32

  @classmethod
  def from_variant(cls, variant: str, **kwargs) -> "DinoVisionTransformer":
    if variant not in VARIANTS:
      raise ValueError(f"unknown ViT variant {variant!r}; expected one of {sorted(VARIANTS)}")
    v = VARIANTS[variant]
    return cls(v.embed_dim, v.depth, v.num_heads, v.intermediate_layers, **kwargs)

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> list[jnp.ndarray]:
    """images: (B, H, W, 3) normalised, H and W multiples of 14.

    Returns: 4 arrays (B, H/14, W/14, D).
    """
    b, h, w, _ = images.shape
    if h % PATCH_SIZE or w % PATCH_SIZE:
      raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {PATCH_SIZE}")
    gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
    d = self.embed_dim
    cls_token = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, d))
    pos_embed = self.param("pos_embed", nn.initializers.normal(0.02), (1, 1 + PRETRAIN_GRID**2, d))
    # Stored by DINOv2 for masked pre-training; unused at inference, kept for round trips.
    self.param("mask_token", nn.initializers.zeros, (1, d))

    x = PatchEmbed(d, self.dtype, name="patch_embed")(images.astype(self.dtype))
    x = x.reshape(b, gh * gw, d)
    x = jnp.concatenate([jnp.broadcast_to(cls_token.astype(x.dtype), (b, 1, d)), x], axis=1)
    x = x + interpolate_pos_embed(pos_embed, gh, gw, self.pos_embed_mode).astype(x.dtype)

    final_norm = nn.LayerNorm(LAYER_NORM_EPS, dtype=self.dtype, name="norm")
    outputs = []
    for i in range(self.depth):
      x = Block(self.num_heads, dtype=self.dtype, name=f"blocks_{i}")(x)
      if i in self.intermediate_layers:
        outputs.append(final_norm(x)[:, 1:].reshape(b, gh, gw, d))
    return outputs
