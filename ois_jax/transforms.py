"""Image <-> model-input transforms: longest side to `size`, pad bottom/right.

The model sees a square (size, size) input: the image resized (bilinear, OpenCV's
INTER_LINEAR = PyTorch's align_corners=False) so that its longest side is `size`, normalised
with the ImageNet mean/std, then zero-padded at the bottom and right. `Transform` maps click
coordinates into the model frame and gives two matrices that map model-space maps back to
the original resolution (`Mh @ logits @ Mw.T`), so jitted code needs no resize op.
"""

import dataclasses

import cv2
import numpy as np

from ois_jax.errors import ImageError
from ois_jax import geometry

MEAN = np.array(geometry.IMAGENET_MEAN, np.float32)
STD = np.array(geometry.IMAGENET_STD, np.float32)


@dataclasses.dataclass(frozen=True)
class Transform:
  """How an (H, W) image sits in the (size, size) model input."""
  scale: float                 # size / max(H, W)
  orig_hw: tuple[int, int]     # (H, W)
  resized_hw: tuple[int, int]  # (h', w') = round((H, W) * scale)
  size: int

  def to_model_coords(self, yx) -> np.ndarray:
    """Original pixel (y, x) -> model pixel (y, x) (`geometry.to_model_coords`). Shape (..., 2)."""
    return geometry.to_model_coords(np.asarray(yx, np.float32), np.float32(self.scale))

  def resize_back_matrices(self) -> tuple[np.ndarray, np.ndarray]:
    """Mh (H, size), Mw (W, size) float32: crop to resized_hw, bilinear (align_corners=False) to (H, W)."""
    return (_padded(geometry.bilinear_matrix(self.resized_hw[0], self.orig_hw[0], False), self.size),
            _padded(geometry.bilinear_matrix(self.resized_hw[1], self.orig_hw[1], False), self.size))

  def to_model_matrices(self) -> tuple[np.ndarray, np.ndarray]:
    """Ph (size, H), Pw (size, W) float32: bilinear (H, W) -> resized_hw, then zero-pad to size.

    `Ph @ mask @ Pw.T` maps an original-resolution map (e.g. a previous mask) into model space.
    """
    ph = np.zeros((self.size, self.orig_hw[0]), np.float32)
    pw = np.zeros((self.size, self.orig_hw[1]), np.float32)
    ph[:self.resized_hw[0]] = geometry.bilinear_matrix(self.orig_hw[0], self.resized_hw[0], False)
    pw[:self.resized_hw[1]] = geometry.bilinear_matrix(self.orig_hw[1], self.resized_hw[1], False)
    return ph, pw


def _padded(m: np.ndarray, size: int) -> np.ndarray:
  """(out, in) matrix -> (out, size) with zero columns for the padding."""
  out = np.zeros((m.shape[0], size), np.float32)
  out[:, :m.shape[1]] = m
  return out


def make_transform(hw: tuple[int, int], size: int) -> Transform:
  h, w = int(hw[0]), int(hw[1])
  if h < 1 or w < 1:
    raise ImageError(f"image has an empty side: {h}x{w}")
  scale = size / max(h, w)
  resized = (min(size, max(1, int(round(h * scale)))), min(size, max(1, int(round(w * scale)))))
  return Transform(scale, (h, w), resized, size)


def check_image(image) -> np.ndarray:
  """Raise ImageError unless `image` is an (H, W, 3) uint8 array."""
  if not isinstance(image, np.ndarray):
    raise ImageError(f"image must be a NumPy array, got {type(image).__name__}")
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ImageError(f"image must be (H, W, 3) uint8 RGB, got {image.dtype} array of shape {image.shape}")
  if image.shape[0] < 1 or image.shape[1] < 1:
    raise ImageError(f"image has an empty side: shape {image.shape}")
  return image


def resize_image(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  """(H, W, C) -> (h, w, C) bilinear (OpenCV's INTER_LINEAR, no antialiasing): the one image
  resampling of inference and training."""
  h, w = hw
  return image if image.shape[:2] == (h, w) else cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def normalize(image: np.ndarray) -> np.ndarray:
  """(..., 3) uint8 RGB -> float32 ImageNet-normalised: the model's input normalisation."""
  return (image.astype(np.float32) / 255.0 - MEAN) / STD


def preprocess(image: np.ndarray, size: int) -> tuple[np.ndarray, Transform]:
  """(H, W, 3) uint8 -> ((size, size, 3) float32 normalised and padded, Transform)."""
  image = check_image(image)
  tf = make_transform(image.shape[:2], size)
  h, w = tf.resized_hw
  resized = resize_image(image, (h, w))
  x = np.zeros((size, size, 3), np.float32)
  x[:h, :w] = normalize(resized)
  return x, tf


def map_to_model(values: np.ndarray, tf: Transform) -> np.ndarray:
  """An (H, W) map (depth, mask) -> (size, size) float32 in model space (bilinear, zero pad)."""
  ph, pw = tf.to_model_matrices()
  return ph @ np.asarray(values, np.float32) @ pw.T


def postprocess(logits_model: np.ndarray, tf: Transform) -> np.ndarray:
  """(size, size) model-space map -> (H, W) at the original resolution."""
  mh, mw = tf.resize_back_matrices()
  return mh @ np.asarray(logits_model, np.float32) @ mw.T
