"""Geometry shared by the models, the transforms and the evaluator: the patch grid, the input
normalisation, original <-> model coordinates, and resizing with PyTorch's exact semantics.

This module imports nothing else of ois-jax, so every layer can use it (models, transforms,
evaluation, data pipelines).

Resizing: `jax.image.resize` has neither `align_corners=True` nor PyTorch's bicubic kernel
(a = -0.75, border-clamped taps), and the DepthAnythingV2 reference uses both. Taps and
matrices depend only on static shapes, so they are built in NumPy at trace time. Bilinear
resizes run as two gathers + lerp per axis; the bicubic position-table resize (small) and
callers that want matrices (`bilinear_matrix`, e.g. to fold a resize into a matmul) use the
dense form.
"""

import functools

import jax.numpy as jnp
import numpy as np

PATCH_SIZE = 14  # DINOv2 / DAv2 patches: model input sides are multiples of 14
# ImageNet statistics of the DAv2 encoder's input normalisation, for RGB in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_model_coords(yx, scale):
  """Original pixel (y, x) -> model pixel (y, x) of an image resized by `scale`:
  (yx + 0.5) * scale - 0.5, pixel centres to pixel centres. yx (..., 2); NumPy or JAX arrays
  (scale broadcasts: a scalar, or (B, 1) for a batch)."""
  return (yx + 0.5) * scale - 0.5


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


@functools.lru_cache(maxsize=256)
def linear_taps(in_size: int, out_size: int, align_corners: bool = True):
  """PyTorch's 1-D linear interpolation as two taps: i0, i1 (int32, (out_size,)) and i1's weight.

  Computed in float32 as PyTorch's CPU kernel does for float32 tensors (scale, source index and
  lambda), which keeps the result within ~1e-6 of F.interpolate even for large outputs.
  """
  dst = np.arange(out_size, dtype=np.float32)
  if align_corners:
    scale = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0)
    src = scale * dst
  else:
    scale = np.float32(in_size) / np.float32(out_size)
    # PyTorch's build contracts scale * (i + 0.5) - 0.5 into one FMA (a single rounding):
    # exact in float64, then rounded once to float32.
    src = (np.float64(scale) * (dst.astype(np.float64) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0))
  i0 = np.minimum(src.astype(np.int32), in_size - 1)  # src >= 0: truncation is floor
  i1 = np.minimum(i0 + 1, in_size - 1)
  frac = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
  return i0, i1, frac


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


def _resize_linear(x: jnp.ndarray, size: tuple[int, int], align_corners: bool) -> jnp.ndarray:
  """Separable 2-tap linear resize of (B, H, W, C): two gathers and a lerp per axis.

  Memory-bound, unlike the dense-matrix form (which costs in*out MACs per row: 8 GFLOP and
  10x the time for DAv2's final 296 -> 518 upsampling on CPU), and closer to PyTorch's rounding.
  """
  for axis, out_size in ((1, size[0]), (2, size[1])):
    if x.shape[axis] == out_size and align_corners:
      continue  # align-corners resize to the same size is the identity
    i0, i1, frac = linear_taps(x.shape[axis], out_size, align_corners)
    shape = [1] * x.ndim
    shape[axis] = out_size
    frac = jnp.asarray(frac.reshape(shape), x.dtype)
    x = jnp.take(x, i0, axis=axis) * (1 - frac) + jnp.take(x, i1, axis=axis) * frac
  return x


def resize_bilinear_align_corners(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
  """Bilinear resize of (B, H, W, C) to (B, *size, C), as F.interpolate(align_corners=True)."""
  return _resize_linear(x, tuple(size), align_corners=True)


def resize_bilinear(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
  """Bilinear resize of (B, H, W, C), as F.interpolate(align_corners=False, antialias=False)."""
  return _resize_linear(x, tuple(size), align_corners=False)
