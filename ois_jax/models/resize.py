"""Resizing with PyTorch's exact semantics, as separable interpolation matrices.

`jax.image.resize` has neither `align_corners=True` nor PyTorch's bicubic kernel
(a = -0.75, border-clamped taps), and the DepthAnythingV2 reference uses both. The
matrices depend only on static shapes, so they are built in NumPy at trace time and
applied with two matmuls (fast on GPU/TPU, exact to fp32 rounding).
"""

import functools

import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=256)
def bilinear_matrix(in_size: int, out_size: int, align_corners: bool = True) -> np.ndarray:
  """(out_size, in_size) float32 matrix of PyTorch's 1-D linear interpolation."""
  weights = np.zeros((out_size, in_size), np.float64)
  if align_corners:
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    src = np.arange(out_size, dtype=np.float64) * scale
  else:
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    src = np.maximum(src, 0.0)
  i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  frac = src - i0
  rows = np.arange(out_size)
  np.add.at(weights, (rows, i0), 1.0 - frac)
  np.add.at(weights, (rows, i1), frac)
  return weights.astype(np.float32)


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> np.ndarray:
  """The 4 taps of the Keys cubic kernel for fractional offsets t, shape (..., 4)."""
  def near(x):  # |x| <= 1
    return ((a + 2) * x - (a + 3)) * x * x + 1
  def far(x):  # 1 < |x| < 2
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


@functools.lru_cache(maxsize=256)
def bicubic_matrix(in_size: int, out_size: int, scale_factor: float | None = None) -> np.ndarray:
  """(out_size, in_size) matrix of PyTorch's bicubic, align_corners=False, no antialias.

  With `scale_factor` given, PyTorch maps output to input coordinates with
  1 / scale_factor rather than in_size / out_size (this matters for DINOv2's
  position-embedding interpolation, which passes scale_factor=(grid + 0.1) / 37).
  """
  # PyTorch computes the coordinate scale in float32 for float32 tensors.
  scale = np.float32(1.0 / scale_factor) if scale_factor else np.float32(in_size / out_size)
  dst = np.arange(out_size, dtype=np.float32)
  src = scale * (dst + np.float32(0.5)) - np.float32(0.5)
  idx = np.floor(src).astype(np.int64)
  taps = _cubic_weights((src - idx).astype(np.float64))
  weights = np.zeros((out_size, in_size), np.float64)
  rows = np.arange(out_size)
  for k in range(4):
    np.add.at(weights, (rows, np.clip(idx - 1 + k, 0, in_size - 1)), taps[:, k])
  return weights.astype(np.float32)


def resize_bilinear_align_corners(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
  """Bilinear resize of (B, H, W, C) to (B, *size, C), as F.interpolate(align_corners=True)."""
  h_mat = jnp.asarray(bilinear_matrix(x.shape[1], size[0]), x.dtype)
  w_mat = jnp.asarray(bilinear_matrix(x.shape[2], size[1]), x.dtype)
  x = jnp.einsum("oh,bhwc->bowc", h_mat, x)
  return jnp.einsum("pw,bowc->bopc", w_mat, x)


def resize_bilinear(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
  """Bilinear resize of (B, H, W, C), as F.interpolate(align_corners=False, antialias=False)."""
  h_mat = jnp.asarray(bilinear_matrix(x.shape[1], size[0], False), x.dtype)
  w_mat = jnp.asarray(bilinear_matrix(x.shape[2], size[1], False), x.dtype)
  x = jnp.einsum("oh,bhwc->bowc", h_mat, x)
  return jnp.einsum("pw,bowc->bopc", w_mat, x)
