"""DINOv2 vision transformer, as used by DepthAnythingV2 (no register tokens).

Parameter names mirror the original checkpoint keys (`pretrained.blocks.{i}.attn.qkv`
-> `blocks_{i}/attn/qkv`), so the converter is a table. Input is NHWC, already
normalised; output is the four intermediate layers used by the DPT heads.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ois_jax import geometry
from ois_jax.errors import ConfigError
from ois_jax.geometry import PATCH_SIZE

LAYER_NORM_EPS = 1e-6
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
    h_mat = geometry.bicubic_matrix(side, grid_h, (grid_h + 0.1) / side)
    w_mat = geometry.bicubic_matrix(side, grid_w, (grid_w + 0.1) / side)
  elif mode == "hf":
    h_mat = geometry.bicubic_matrix(side, grid_h)
    w_mat = geometry.bicubic_matrix(side, grid_w)
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
# The same on GPUs and TPUs, where each block should be one large matmul rather than fit a cache
# (an untuned starting point). At 2044 px that is 7 blocks per head.
ACCELERATOR_BLOCK_BYTES = 2**28

# `model.attention` values (see `self_attention`).
ATTENTION_IMPLEMENTATIONS = ("auto", "xla", "cudnn", "blocked")

# "auto" keeps the plain formula only while its (B, heads, N, N) float32 logits fit in this many
# bytes; past it (ViT-B at 2044 px: 12 x 21,317^2 x 4 B = 22 GB per layer) it takes the blocked
# loop, whose memory is O(N x block) instead of O(N^2).
PLAIN_ATTENTION_MAX_BYTES = 2**30


def plain_attention(q, k, v):
  """softmax(q k^T / sqrt(d)) v. q, k, v: (B, heads, N, hd) -> (B, heads, N, hd).

  Logits and softmax in float32 whatever the input dtype; the weights return to v's dtype.
  """
  logits = jnp.matmul(q * q.shape[-1]**-0.5, k.swapaxes(-1, -2),
                      preferred_element_type=jnp.float32)  # (B, heads, N, N)
  weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return weights @ v


def blocked_attention(q, k, v, block_bytes: int = ATTENTION_BLOCK_BYTES):
  """`plain_attention`, one (head, query block) at a time. Same shapes, same values.

  Only one (rows, N) float32 logits block exists at a time (rows = block_bytes / 4N), so the
  temporary memory is O(N x rows) rather than the plain form's O(heads x N^2). On CPU it is
  also faster: XLA:CPU cannot fuse the two matmuls with the softmax, so the plain form streams
  the whole (B, heads, N, N) logits tensor (45 MB per ViT-S layer at 518) through memory
  several times; this loop keeps each block in cache and cuts a ViT-S depth pass at 518 px from
  about 1.0 s to 0.85 s on 2 cores.
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


def _blocked(q, k, v):
  """`blocked_attention` on (B, N, heads, hd) tensors, with the block size of the platform."""
  heads_first = lambda x: x.transpose(0, 2, 1, 3)

  def run(block_bytes):
    return lambda q, k, v: heads_first(blocked_attention(heads_first(q), heads_first(k), heads_first(v),
                                                         block_bytes))
  return jax.lax.platform_dependent(q, k, v, cpu=run(ATTENTION_BLOCK_BYTES),
                                    default=run(ACCELERATOR_BLOCK_BYTES))


def _xla(q, k, v):
  """The plain formula as jax.nn.dot_product_attention writes it (einsum, float32 softmax,
  einsum): standard ops only, so ONNX converters can express it. On CPU its (B, N, heads, hd)
  einsums run about 2x slower than the heads-first batched matmuls of `blocked_attention`."""
  return jax.nn.dot_product_attention(q, k, v, implementation="xla")


def _cudnn(q, k, v):
  return jax.nn.dot_product_attention(q, k, v, implementation="cudnn")


def cudnn_supported(q) -> bool:
  """Whether cuDNN flash attention takes these (B, N, heads, hd) queries on this machine:
  float16/bfloat16, head dim a multiple of 8 and at most 128, NVIDIA GPUs of compute
  capability 8.0 (Ampere) or newer."""
  if q.dtype not in (jnp.bfloat16, jnp.float16) or q.shape[-1] % 8 or q.shape[-1] > 128:
    return False
  try:
    gpus = jax.devices("cuda")
  except RuntimeError:  # no CUDA backend in this process
    return False
  return all(tuple(int(p) for p in gpu.compute_capability.split(".")) >= (8, 0) for gpu in gpus)


def _bounded_unless_small(q, k, v):
  # Per example: the batch may be symbolic (jax.export with a dynamic batch dimension), and the
  # implementation must not change with the batch size.
  _, n, h, _ = q.shape
  small = h * n * n * 4 <= PLAIN_ATTENTION_MAX_BYTES
  return _xla(q, k, v) if small else _blocked(q, k, v)


def _gpu_auto(q, k, v):
  if cudnn_supported(q):
    try:
      return _cudnn(q, k, v)
    except NotImplementedError:  # a shape cuDNN's flash kernel rejects (checked when tracing)
      pass
  return _bounded_unless_small(q, k, v)


def self_attention(q, k, v, implementation: str = "auto"):
  """Scaled dot-product self-attention. q, k, v: (B, N, heads, hd) -> (B, N, heads, hd).

  implementation:
    "xla": the plain formula (jax.nn.dot_product_attention's XLA path): O(N^2) logits.
    "cudnn": cuDNN flash attention (NVIDIA GPU, float16/bfloat16): O(N) memory.
    "blocked": `blocked_attention` on any platform: O(N x block) memory (blocks of
      ATTENTION_BLOCK_BYTES on CPU, ACCELERATOR_BLOCK_BYTES elsewhere).
    "auto": blocked on CPU; on NVIDIA GPUs cuDNN where shapes and dtypes allow; otherwise
      xla, or blocked when one example's plain logits would exceed PLAIN_ATTENTION_MAX_BYTES. Chosen when
      lowering, so one jitted function serves CPU and accelerators.
  Logits and softmax are float32 in every implementation.
  """
  if implementation == "auto":
    return jax.lax.platform_dependent(q, k, v, cpu=_blocked, cuda=_gpu_auto,
                                      default=_bounded_unless_small)
  if implementation == "xla":
    return _xla(q, k, v)
  if implementation == "blocked":
    return _blocked(q, k, v)
  if implementation == "cudnn":
    if not cudnn_supported(q):
      raise ConfigError(
          f"model.attention='cudnn' needs an NVIDIA GPU (compute capability >= 8.0) and "
          f"float16/bfloat16 heads of dim <= 128 and a multiple of 8; got {q.dtype} heads of dim "
          f"{q.shape[-1]} on {jax.default_backend()}. Use 'auto' to fall back where it cannot run")
    try:
      return _cudnn(q, k, v)
    except NotImplementedError as e:
      raise ConfigError(f"model.attention='cudnn' cannot run this shape {tuple(q.shape)}: {e}") from e
  raise ConfigError(f"attention implementation must be one of {ATTENTION_IMPLEMENTATIONS}, "
                    f"got {implementation!r}")


class Attention(nn.Module):
  """Multi-head self-attention with a fused qkv projection. (B, N, D) -> (B, N, D).

  `implementation`: see `self_attention`.
  """
  num_heads: int
  dtype: jnp.dtype = jnp.float32
  implementation: str = "auto"

  @nn.compact
  def __call__(self, x):
    b, n, d = x.shape
    head_dim = d // self.num_heads
    qkv = nn.Dense(3 * d, dtype=self.dtype, name="qkv")(x)
    qkv = qkv.reshape(b, n, 3, self.num_heads, head_dim)  # DINOv2's order of the fused projection
    out = self_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], self.implementation)
    return nn.Dense(d, dtype=self.dtype, name="proj")(out.reshape(b, n, d))


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
  """Pre-norm transformer block with LayerScale. (B, N, D) float32 -> (B, N, D) float32.

  The residual stream stays float32 whatever `dtype` is: LayerScale makes each block's update
  small next to the stream, and bfloat16's 8-bit mantissa would round much of it away. Norms,
  projections and the MLP compute in `dtype`; LayerNorm statistics are float32 (flax).
  `layer_scale=False`: the plain (MAE-style) block of the backbone ablation (plain_vit.py).
  """
  num_heads: int
  mlp_ratio: float = 4.0
  dtype: jnp.dtype = jnp.float32
  attention: str = "auto"
  layer_scale: bool = True

  @nn.compact
  def __call__(self, x):
    norm = lambda name: nn.LayerNorm(LAYER_NORM_EPS, dtype=self.dtype, name=name)
    scale = (lambda name: LayerScale(name=name)) if self.layer_scale else (lambda name: lambda y: y)
    attn = Attention(self.num_heads, self.dtype, self.attention, name="attn")
    x = x + scale("ls1")(attn(norm("norm1")(x)))
    hidden = int(x.shape[-1] * self.mlp_ratio)
    x = x + scale("ls2")(Mlp(hidden, self.dtype, name="mlp")(norm("norm2")(x)))
    return x


class DinoVisionTransformer(nn.Module):
  """DINOv2 ViT returning 4 normed intermediate layers without the class token.

  Attributes:
    embed_dim, depth, num_heads: the variant (see VARIANTS).
    intermediate_layers: block indices whose outputs are returned.
    pos_embed_mode: "original" (DAv2) or "hf" (Hugging Face) interpolation.
    dtype: compute dtype (parameters and the residual stream stay float32).
    attention: self-attention implementation (see `self_attention`).
  """
  embed_dim: int = 384
  depth: int = 12
  num_heads: int = 6
  intermediate_layers: tuple[int, ...] = (2, 5, 8, 11)
  pos_embed_mode: str = "original"
  dtype: jnp.dtype = jnp.float32
  attention: str = "auto"

  @classmethod
  def from_variant(cls, variant: str, **kwargs) -> "DinoVisionTransformer":
    if variant not in VARIANTS:
      raise ValueError(f"unknown ViT variant {variant!r}; expected one of {sorted(VARIANTS)}")
    v = VARIANTS[variant]
    return cls(v.embed_dim, v.depth, v.num_heads, v.intermediate_layers, **kwargs)

  @nn.compact
  def __call__(self, images: jnp.ndarray) -> list[jnp.ndarray]:
    """images: (B, H, W, 3) normalised, H and W multiples of 14.

    Returns: 4 arrays (B, H/14, W/14, D) in the compute dtype.
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
    x = x.reshape(b, gh * gw, d).astype(jnp.float32)  # the float32 residual stream (see Block)
    x = jnp.concatenate([jnp.broadcast_to(cls_token.astype(x.dtype), (b, 1, d)), x], axis=1)
    x = x + interpolate_pos_embed(pos_embed, gh, gw, self.pos_embed_mode).astype(x.dtype)

    final_norm = nn.LayerNorm(LAYER_NORM_EPS, dtype=self.dtype, name="norm")
    outputs = []
    for i in range(self.depth):
      x = Block(self.num_heads, dtype=self.dtype, attention=self.attention, name=f"blocks_{i}")(x)
      if i in self.intermediate_layers:
        outputs.append(final_norm(x)[:, 1:].reshape(b, gh, gw, d))
    return outputs
