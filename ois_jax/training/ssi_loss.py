"""The scale-and-shift-invariant (SSI) loss of MiDaS / DepthAnythingV2, for relative inverse depth.

Each map is aligned per sample by its median t and its mean absolute deviation s over the valid
pixels, d^ = (d - t) / s; the loss is the mean |pred^ - target^|, plus (optionally) MiDaS's
multi-scale gradient matching of the aligned residual. A constant prediction scores exactly 1.
"""

import jax
import jax.numpy as jnp

EPS = 1e-6


def masked_median(x: jax.Array, valid: jax.Array) -> jax.Array:
  """(B, N) values, (B, N) bool -> (B,) median over the valid entries (mean of the two middle
  ones for an even count; 0 where none is valid)."""
  count = valid.sum(axis=-1)
  ordered = jnp.sort(jnp.where(valid, x, jnp.inf), axis=-1)
  lo = jnp.take_along_axis(ordered, jnp.maximum(count - 1, 0)[:, None] // 2, axis=-1)[:, 0]
  hi = jnp.take_along_axis(ordered, (count // 2)[:, None], axis=-1)[:, 0]
  return jnp.where(count > 0, 0.5 * (lo + hi), 0.0)


def shift_and_scale(d: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(B, H, W) maps -> t (B,) the median and s (B,) the mean absolute deviation from it, over
  the valid pixels (MiDaS / DepthAnythingV2)."""
  b = d.shape[0]
  flat, mask = d.reshape(b, -1).astype(jnp.float32), valid.reshape(b, -1)
  t = masked_median(flat, mask)
  s = jnp.sum(jnp.abs(flat - t[:, None]) * mask, -1) / jnp.maximum(mask.sum(-1), 1)
  return t, s


def align_scale_shift(d: jax.Array, valid: jax.Array) -> jax.Array:
  """(B, H, W) maps -> (d - t(d)) / s(d) per sample over the valid pixels, 0 elsewhere."""
  t, s = shift_and_scale(d, valid)
  aligned = (d.astype(jnp.float32) - t[:, None, None]) / jnp.maximum(s, EPS)[:, None, None]
  return jnp.where(valid, aligned, 0.0)


def gradient_matching(residual: jax.Array, valid: jax.Array, scales: int = 4) -> jax.Array:
  """MiDaS multi-scale gradient-matching term of the aligned residual (B, H, W): at each scale
  (every 2^k-th pixel), the mean over valid neighbour pairs of |dR/dx| + |dR/dy|; (B,)."""
  total = 0.0
  for k in range(scales):
    r, m = residual[:, ::2 ** k, ::2 ** k], valid[:, ::2 ** k, ::2 ** k]
    mx, my = m[:, :, 1:] & m[:, :, :-1], m[:, 1:] & m[:, :-1]
    gx = jnp.abs(r[:, :, 1:] - r[:, :, :-1]) * mx
    gy = jnp.abs(r[:, 1:] - r[:, :-1]) * my
    count = jnp.maximum(m.sum((1, 2)), 1)
    total = total + (gx.sum((1, 2)) + gy.sum((1, 2))) / count
  return total


def ssi_loss(pred: jax.Array, target: jax.Array, valid: jax.Array, gradient_weight: float = 0.0,
             scales: int = 4, reduce: bool = True) -> jax.Array:
  """Scale-and-shift-invariant loss of MiDaS / DepthAnythingV2.

  Args:
    pred, target: (B, H, W) relative inverse depth (any scale and shift).
    valid: (B, H, W) bool, the pixels that count (padding and warped-in border excluded).
    gradient_weight: weight of the multi-scale gradient-matching term (0: none).
  Returns:
    mean over the batch (or (B,) when `reduce` is False) of mean_valid |d^ - d*^|
    (+ gradient_weight * gradient matching), d^ = (d - median(d)) / mean|d - median(d)|.
  """
  valid = valid.astype(bool)
  residual = align_scale_shift(pred, valid) - align_scale_shift(target, valid)
  count = jnp.maximum(valid.sum((1, 2)), 1)
  per_sample = jnp.sum(jnp.abs(residual), (1, 2)) / count
  if gradient_weight:
    per_sample = per_sample + gradient_weight * gradient_matching(residual, valid, scales)
  return per_sample.mean() if reduce else per_sample
