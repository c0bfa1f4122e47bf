"""Normalized focal loss (RITM / SegNext `NormalizedFocalLossSigmoid`), as a pure function.

Per pixel: `p = sigmoid(logit)`, `pt = p` on the object and `1 - p` on the background,
`beta = (1 - pt)^gamma`. Beta is rescaled per sample by `sum(valid) / sum(beta)` (no gradient
through the scale), so the loss does not shrink as the prediction gets better and the hard
pixels keep a constant total weight. Pixels labelled -1 are ignored.
"""

import jax
import jax.numpy as jnp

_EPS = 1e-12


def normalized_focal_loss(logits, gt, alpha: float = 0.5, gamma: float = 2.0,
                          reduce: bool = True):
  """Loss of logits (B, H, W) against gt (B, H, W) with 1 object / 0 background / -1 ignore.

  Returns the mean over the batch of the per-sample loss (each sample averaged over its valid
  pixels), or the per-sample losses (B,) when `reduce` is False.
  """
  logits = logits.astype(jnp.float32)
  is_object = gt == 1
  valid = (gt >= 0).astype(jnp.float32)                     # (B, H, W)
  prob = jax.nn.sigmoid(logits)
  pt = jnp.where(is_object, prob, 1.0 - prob)
  pt = jnp.where(valid > 0, pt, 1.0)                        # ignored pixels: beta = 0
  # log(pt) from the logits directly: exact where pt underflows in float32.
  log_pt = jnp.where(is_object, jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits))
  alpha_map = jnp.where(is_object, alpha, 1.0 - alpha)
  beta = (1.0 - pt) ** gamma
  scale = valid.sum(axis=(-2, -1), keepdims=True) / (beta.sum(axis=(-2, -1), keepdims=True) + _EPS)
  beta = beta * jax.lax.stop_gradient(scale)
  pixel_loss = -alpha_map * beta * log_pt * valid
  per_sample = pixel_loss.sum(axis=(-2, -1)) / (valid.sum(axis=(-2, -1)) + _EPS)  # (B,)
  return per_sample.mean() if reduce else per_sample
