"""Order maps (paper Eq. 1-2) and token-level pooling of per-pixel masks.

- Positive clicks share one map:  M_p   = |R - mean_i R(p_i)|  over the valid positive clicks.
- Each negative click has its own: M_n_j = |R - R(n_j)|.
OUR CHOICE: R is min-max normalised to [0, 1] per image (`normalize_depth`), so order values
lie in [0, 1]; R(p) is read at the nearest pixel of the click; maps are computed at input
resolution and average-pooled over each 14x14 patch to the token grid. Empty slots and slots
of a sign disabled by `order_maps` get an all-zero map (no order bias: plain attention).
`order_maps_grid` gives the same maps on the finer grids of the segmentation head's skip levels
(`model.fine_order`).
"""

import jax.numpy as jnp

from ois_jax import geometry
from ois_jax.geometry import PATCH_SIZE



def normalize_depth(depth: jnp.ndarray, eps: float = 1e-6) -> jnp.ndarray:
  """Per-image min-max normalisation. (B, H, W) -> (B, H, W) float32 in [0, 1]."""
  depth = depth.astype(jnp.float32)
  lo = jnp.min(depth, axis=(1, 2), keepdims=True)
  hi = jnp.max(depth, axis=(1, 2), keepdims=True)
  return (depth - lo) / jnp.maximum(hi - lo, eps)


def sample_depth(depth: jnp.ndarray, coords: jnp.ndarray) -> jnp.ndarray:
  """Nearest-pixel depth at click coordinates. depth (B, H, W), coords (B, N, 2) -> (B, N)."""
  b, h, w = depth.shape
  y = jnp.clip(jnp.round(coords[..., 0]).astype(jnp.int32), 0, h - 1)
  x = jnp.clip(jnp.round(coords[..., 1]).astype(jnp.int32), 0, w - 1)
  flat = depth.reshape(b, h * w)
  return jnp.take_along_axis(flat, y * w + x, axis=1)


def patch_mean(maps: jnp.ndarray, patch: int = PATCH_SIZE) -> jnp.ndarray:
  """Average over non-overlapping patches. (B, K, H, W) -> (B, K, H/p * W/p)."""
  b, k, h, w = maps.shape
  pooled = maps.reshape(b, k, h // patch, patch, w // patch, patch).mean(axis=(3, 5))
  return pooled.reshape(b, k, -1)


def order_values(depth: jnp.ndarray, coords: jnp.ndarray, valid: jnp.ndarray,
                 num_positive: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The reference depth of each map: (B,) positive mean, (B, N_neg) per negative click."""
  values = sample_depth(depth, coords)  # (B, N)
  pos_valid = valid[:, :num_positive].astype(jnp.float32)
  pos_mean = jnp.sum(values[:, :num_positive] * pos_valid, axis=1) / jnp.maximum(
      jnp.sum(pos_valid, axis=1), 1.0)
  return pos_mean, values[:, num_positive:]


def order_maps_pixels(depth: jnp.ndarray, coords: jnp.ndarray, valid: jnp.ndarray,
                      num_positive: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Eq. 1-2 at input resolution: M_p (B, H, W) and M_n (B, N_neg, H, W) (zero for empty slots)."""
  return maps_from_values(depth, *order_values(depth, coords, valid, num_positive), valid,
                          num_positive)


def maps_from_values(depth: jnp.ndarray, pos_mean: jnp.ndarray, neg_values: jnp.ndarray,
                     valid: jnp.ndarray, num_positive: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """|depth - reference| for the positive mean (B,) and each negative click's depth (B, N_neg):
  M_p (B, H, W) and M_n (B, N_neg, H, W), zero for empty slots. depth (B, H, W) at any grid."""
  m_p = jnp.abs(depth - pos_mean[:, None, None])
  m_p = m_p * jnp.any(valid[:, :num_positive], axis=1)[:, None, None]
  m_n = jnp.abs(depth[:, None] - neg_values[..., None, None])
  m_n = m_n * valid[:, num_positive:, None, None]
  return m_p, m_n


def _check_which(which: str) -> None:
  if which not in ("both", "positive", "negative"):
    raise ValueError(f"order_maps must be 'both', 'positive' or 'negative', got {which!r}")


def order_maps_tokens(depth: jnp.ndarray, coords: jnp.ndarray, valid: jnp.ndarray,
                      num_positive: int, which: str = "both") -> jnp.ndarray:
  """Slot order maps on the token grid. depth (B, S, S) in [0, 1] -> M (B, N, T), T = (S/14)^2.

  which: "both" | "positive" (negative slots get 0) | "negative" (positive slots get 0).
  """
  _check_which(which)
  m_p, m_n = order_maps_pixels(depth, coords, valid, num_positive)
  maps = patch_mean(jnp.concatenate([m_p[:, None], m_n], axis=1))  # (B, 1 + N_neg, T)
  return _slot_maps(maps, num_positive, which)


def order_maps_grid(depth: jnp.ndarray, coords: jnp.ndarray, valid: jnp.ndarray,
                    num_positive: int, size: int, which: str = "both") -> jnp.ndarray:
  """Slot order maps on a finer (size x size) grid. depth (B, S, S) in [0, 1] -> M (B, N, size^2).

  The depth is resized to the grid (bilinear, align_corners, as the disk maps are for the same
  levels) and compared with the clicks' depths read at full resolution: M_j(p) = |R_size(p) - R(p_j)|.
  A map of size S/14 would differ from `order_maps_tokens` only in how a patch is summarised.
  """
  _check_which(which)
  b = depth.shape[0]
  grid_depth = geometry.resize_bilinear_align_corners(depth[..., None], (size, size))[..., 0]
  m_p, m_n = maps_from_values(grid_depth, *order_values(depth, coords, valid, num_positive), valid,
                              num_positive)
  maps = jnp.concatenate([m_p[:, None], m_n], axis=1).reshape(b, 1 + m_n.shape[1], size * size)
  return _slot_maps(maps, num_positive, which)


def _slot_maps(maps: jnp.ndarray, num_positive: int, which: str) -> jnp.ndarray:
  """(B, 1 + N_neg, T) positive map then the negatives' -> (B, N, T), one map per slot (the
  positive slots share theirs); the sign `which` leaves out gets zero maps."""
  b, _, t = maps.shape
  pos = jnp.broadcast_to(maps[:, :1], (b, num_positive, t))
  neg = maps[:, 1:]
  if which == "negative":
    pos = jnp.zeros_like(pos)
  if which == "positive":
    neg = jnp.zeros_like(neg)
  return jnp.concatenate([pos, neg], axis=1)


def object_regions(prev_mask: jnp.ndarray, has_prev: jnp.ndarray, num_positive: int,
                   num_negative: int, threshold: float = 0.5) -> jnp.ndarray:
  """Allowed tokens of object-aware attention. prev_mask (B, S, S) -> (B, N, T) bool.

  OUR CHOICE: a token is foreground if ANY pixel of its patch has prob > threshold and
  background if ANY pixel has prob <= threshold (boundary patches are in both, so thin
  objects keep foreground tokens). Positive slots may see the foreground, negative slots the
  background. Where has_prev is False (first round) everything is allowed (plain attention).
  """
  fg = (prev_mask > threshold).astype(jnp.float32)[:, None]  # (B, 1, S, S)
  fg_any = patch_mean(fg)[:, 0] > 0  # (B, T)
  bg_any = patch_mean(1.0 - fg)[:, 0] > 0
  b, t = fg_any.shape
  allowed = jnp.concatenate([jnp.broadcast_to(fg_any[:, None], (b, num_positive, t)),
                             jnp.broadcast_to(bg_any[:, None], (b, num_negative, t))], axis=1)
  return allowed | ~has_prev[:, None, None]
