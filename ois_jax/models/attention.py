"""Masked cross-attention blocks of OIS (paper Eq. 3-5).

Each block: object-aware attention -> LayerNorm -> order-aware attention -> LayerNorm ->
FFN (2-layer MLP) -> LayerNorm, every step residual on the sparse embeddings S (B, N, C).
`block_order="order_first"` swaps the two attentions (Table 7). Disabled attentions
(`use_object` / `use_order` False) are absent, parameters included.

- Object-aware (Eq. 4-5): logits = QK^T / sqrt(d) with -inf outside the slot's allowed region
  (positive slots: previous foreground, negative slots: its background). OUR CHOICE: a slot
  whose allowed region is empty falls back to plain attention, so no row is all -inf (no NaN).
- Order-aware (Eq. 3): logits = QK^T / sqrt(d) - sigma * M, M (B, N, T) the slot's order map,
  sigma = softplus(sigma_raw) learned (OUR CHOICE: one scalar per block, initialised to
  `sigma_init`).
- OUR CHOICE (as in SAM): keys are image features + token positional encoding, values the
  image features; logits and softmax run in float32 whatever the compute dtype.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LAYER_NORM_EPS = 1e-5


class CrossAttention(nn.Module):
  """Multi-head cross-attention with an optional additive bias and an allowed mask.

  queries (B, N, C), keys/values (B, T, C); bias (B, N, T) added to the logits of every head;
  allowed (B, N, T) bool. The attention weights (B, heads, N, T) are sown as
  `intermediates/weights`.
  """
  dim: int
  num_heads: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, queries, keys, values, bias=None, allowed=None):
    b, n, _ = queries.shape
    t = keys.shape[1]
    hd = self.dim // self.num_heads
    dense = lambda name: nn.Dense(self.dim, dtype=self.dtype, name=name)
    q = dense("q")(queries).reshape(b, n, self.num_heads, hd)
    k = dense("k")(keys).reshape(b, t, self.num_heads, hd)
    v = dense("v")(values).reshape(b, t, self.num_heads, hd)
    logits = jnp.einsum("bnhd,bthd->bhnt", q, k, preferred_element_type=jnp.float32)
    logits = logits / np.sqrt(hd).astype(np.float32)
    if bias is not None:
      logits = logits + bias[:, None].astype(jnp.float32)
    if allowed is not None:
      # A slot with no allowed token attends everywhere rather than producing NaN.
      allowed = allowed | ~jnp.any(allowed, axis=-1, keepdims=True)
      logits = jnp.where(allowed[:, None], logits, -jnp.inf)
    weights = jax.nn.softmax(logits, axis=-1)
    self.sow("intermediates", "weights", weights)
    out = jnp.einsum("bhnt,bthd->bnhd", weights.astype(self.dtype), v).reshape(b, n, self.dim)
    return dense("out")(out)


def learned_sigma(module: nn.Module, init: float) -> jax.Array:
  """The order bias' scale sigma = softplus(sigma_raw) > 0, a scalar parameter of `module`
  ("sigma_raw") that starts at sigma = init."""
  raw_init = float(init + np.log(-np.expm1(-init)))  # softplus^-1, stable
  return jax.nn.softplus(module.param("sigma_raw", nn.initializers.constant(raw_init), ()))


class ObjectAwareAttention(nn.Module):
  """S' = LN(S + softmax(QK^T + H) V), H = 0 on allowed tokens, -inf elsewhere."""
  dim: int
  num_heads: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, s, keys, values, allowed):
    out = CrossAttention(self.dim, self.num_heads, self.dtype, name="attn")(
        s, keys, values, allowed=allowed)
    return nn.LayerNorm(LAYER_NORM_EPS, dtype=self.dtype, name="norm")(s + out)


class OrderAwareAttention(nn.Module):
  """S' = LN(S + softmax(QK^T - sigma M) V), sigma = softplus(sigma_raw) > 0."""
  dim: int
  num_heads: int
  sigma_init: float = 5.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, s, keys, values, order_map):
    out = CrossAttention(self.dim, self.num_heads, self.dtype, name="attn")(
        s, keys, values, bias=-learned_sigma(self, self.sigma_init) * order_map)
    return nn.LayerNorm(LAYER_NORM_EPS, dtype=self.dtype, name="norm")(s + out)


class FeedForward(nn.Module):
  """S' = LN(S + fc2(gelu(fc1(S))))."""
  mlp_dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, s):
    h = nn.gelu(nn.Dense(self.mlp_dim, dtype=self.dtype, name="fc1")(s))
    h = nn.Dense(s.shape[-1], dtype=self.dtype, name="fc2")(h)
    return nn.LayerNorm(LAYER_NORM_EPS, dtype=self.dtype, name="norm")(s + h)


class PromptBlock(nn.Module):
  """One OIS block on the sparse embeddings. s (B, N, C), keys/values (B, T, C) -> (B, N, C).

  order_map (B, N, T) float and allowed (B, N, T) bool are needed only by the enabled paths.
  """
  dim: int
  num_heads: int
  mlp_dim: int
  use_object: bool = True
  use_order: bool = True
  block_order: str = "object_first"
  sigma_init: float = 5.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, s, keys, values, order_map=None, allowed=None):
    if self.block_order not in ("object_first", "order_first"):
      raise ValueError(f"block_order must be 'object_first' or 'order_first', got {self.block_order!r}")
    steps = ["object", "order"] if self.block_order == "object_first" else ["order", "object"]
    for step in steps:
      if step == "object" and self.use_object:
        s = ObjectAwareAttention(self.dim, self.num_heads, self.dtype, name="object_attn")(
            s, keys, values, allowed)
      if step == "order" and self.use_order:
        s = OrderAwareAttention(self.dim, self.num_heads, self.sigma_init, self.dtype,
                                name="order_attn")(s, keys, values, order_map)
    return FeedForward(self.mlp_dim, self.dtype, name="ffn")(s)


class SkipPromptFusion(nn.Module):
  """The prompts at one finer level of the segmentation head (`model.fine_prompt_levels`).

  OUR CHOICE (the paper feeds the prompts to the decoder at the token grid only): the level's
  positions cross-attend to the slots S (queries: the level's skip features projected to C plus
  the position encoding of their centres), and the click disk maps, resized to the level's grid,
  pass through a 3x3 conv. Both are added to the level's skip features. At 8 x 8 tokens the
  token grid alone is too coarse for a mask (the ground truth pooled to it scores 46 % IoU on
  the procedural scenes). The output layers start at zero, so an untrained fusion leaves the
  depth-initialised head as it was.

  With `order_sigma_init` set (`model.fine_order`), the attention is order-aware as in Eq. 3:
  position p's logit for slot j is lowered by sigma * M_j(p), M_j the slot's order map on the
  level's grid (order.order_maps_grid), sigma = softplus(sigma_raw) learned, one per level.
  """
  dim: int
  num_heads: int
  features: int
  dtype: jnp.dtype = jnp.float32
  order_sigma_init: float | None = None

  @nn.compact
  def __call__(self, skip, slots=None, position=None, disk_maps=None, order_map=None):
    """skip (B, n, n, F); slots (B, N, C) with position (n*n, C) their queries' encoding;
    disk_maps (B, n, n, 2); order_map (B, N, n*n), needed iff `order_sigma_init` is set.
    Returns (B, n, n, F)."""
    b, n = skip.shape[0], skip.shape[1]
    zeros = nn.initializers.zeros
    out = skip
    if slots is not None:
      q = nn.Dense(self.dim, dtype=self.dtype, name="query_proj")(skip.reshape(b, n * n, -1))
      q = q + position.astype(q.dtype)
      bias = None
      if self.order_sigma_init is not None:
        bias = -learned_sigma(self, self.order_sigma_init) * jnp.swapaxes(order_map, 1, 2)
      q = nn.LayerNorm(LAYER_NORM_EPS, dtype=self.dtype, name="norm")(
          q + CrossAttention(self.dim, self.num_heads, self.dtype, name="attn")(q, slots, slots, bias))
      out = out + nn.Dense(self.features, dtype=self.dtype, kernel_init=zeros,
                           name="out_proj")(q).reshape(b, n, n, -1).astype(skip.dtype)
    if disk_maps is not None:
      out = out + nn.Conv(self.features, (3, 3), padding="SAME", dtype=self.dtype, kernel_init=zeros,
                          name="disk_conv")(disk_maps.astype(self.dtype)).astype(skip.dtype)
    return out
