"""Training augmentations (the RITM / SegNext recipe), NumPy/OpenCV on the host.

Applied jointly to the image (H, W, 3) uint8, the target (H, W) int8 (1 / 0 / -1 ignore) and,
when present, a depth map (H, W) float32. Order:
  1. flips (horizontal / vertical / both, p 0.5) and rotate by k*90 degrees (p 0.5)
  2. resize the longest side to the model input size S (bilinear for the image, as at inference,
     nearest for the target, linear for depth), giving a frame (h', w') in the top-left of the
     S x S input
  3. one affine warp inside that frame = random resize 0.75-1.40 about a random fixed point,
     plus shift/scale/rotate (p 0.75: shift +-3 %, rotate +-3 degrees) as in SimpleClick's
     `ShiftScaleRotate(shift_limit=0.03, scale_limit=0, rotate_limit=3)`
  4. brightness/contrast (p 0.75: brightness +-0.25 of 255, contrast 0.85-1.40) and RGB shift
     (p 0.75: +-10 per channel) on the image only
  5. pad to S x S: image 0, depth 0, target -1 (ignore), so the loss skips padding.
Pixels that the warp pulls from outside the source frame are also ignore (-1) and, like the
padding, are returned as non-content (zero after normalisation in the batch).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ois_jax import transforms

IGNORE = -1


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Augmentation ranges (defaults: SimpleClick / SegNext training recipe)."""
  size: int = 518
  enabled: bool = True
  resize_range: tuple[float, float] = (0.75, 1.40)
  flip_prob: float = 0.5
  rot90_prob: float = 0.5
  ssr_prob: float = 0.75
  shift_limit: float = 0.03
  rotate_limit: float = 3.0
  color_prob: float = 0.75
  brightness_limit: float = 0.25
  contrast_range: tuple[float, float] = (0.85, 1.40)
  rgb_shift_prob: float = 0.75
  rgb_shift_limit: float = 10.0


def flip_rotate(arrays: list[np.ndarray | None], rng: np.random.Generator,
                cfg: AugmentConfig) -> list[np.ndarray | None]:
  """Same flips / rot90 on every (H, W, ...) array; None entries pass through."""
  flip_axes = ()
  if rng.random() < cfg.flip_prob:
    flip_axes = ((1,), (0,), (0, 1))[rng.integers(3)]
  k = int(rng.integers(1, 4)) if rng.random() < cfg.rot90_prob else 0
  out = []
  for a in arrays:
    if a is not None:
      if flip_axes:
        a = np.flip(a, axis=flip_axes)
      if k:
        a = np.rot90(a, k, axes=(0, 1))
      a = np.ascontiguousarray(a)
    out.append(a)
  return out


def fit_longest_side(image: np.ndarray, gt: np.ndarray, depth: np.ndarray | None,
                     size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
  """Resize so that the longest side equals `size` (aspect kept), with the resampling of
  inference (`transforms.preprocess`: bilinear), so training and inference see alike pixels."""
  nh, nw = transforms.make_transform(gt.shape, size).resized_hw
  if (nh, nw) == gt.shape:
    return image, gt, depth
  image = transforms.resize_image(image, (nh, nw))
  gt = cv2.resize(gt.astype(np.int16), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(np.int8)
  if depth is not None:
    depth = cv2.resize(depth.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
  return image, gt, depth


def random_affine(hw: tuple[int, int], rng: np.random.Generator,
                  cfg: AugmentConfig) -> np.ndarray:
  """(2, 3) matrix mapping source (x, y) to output (x, y) inside an (h, w) frame."""
  h, w = hw
  s = rng.uniform(*cfg.resize_range)
  angle, tx, ty = 0.0, 0.0, 0.0
  if rng.random() < cfg.ssr_prob:
    angle = rng.uniform(-cfg.rotate_limit, cfg.rotate_limit)
    tx = rng.uniform(-cfg.shift_limit, cfg.shift_limit) * w
    ty = rng.uniform(-cfg.shift_limit, cfg.shift_limit) * h
  # Fixed point of the zoom: uniform in the frame; for s > 1 the window then stays inside.
  cx, cy = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
  m = cv2.getRotationMatrix2D((cx, cy), angle, s)
  m[:, 2] += (tx, ty)
  return m


def warp(image: np.ndarray, gt: np.ndarray, depth: np.ndarray | None, m: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
  """Apply the (2, 3) affine to all arrays; out-of-source pixels become ignore."""
  h, w = gt.shape
  image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  # Labels shifted by +1 so that the constant border 0 means ignore (-1).
  shifted = (gt.astype(np.int16) + 1).astype(np.uint8)
  shifted = cv2.warpAffine(shifted, m, (w, h), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  gt = shifted.astype(np.int8) - 1
  if depth is not None:
    depth = cv2.warpAffine(depth.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  return image, gt, depth


def color_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
  """Brightness/contrast then RGB shift (albumentations conventions), uint8 in and out."""
  x = image.astype(np.float32)
  if rng.random() < cfg.color_prob:
    alpha = rng.uniform(*cfg.contrast_range)
    beta = rng.uniform(-cfg.brightness_limit, cfg.brightness_limit) * 255.0
    x = x * alpha + beta
  if rng.random() < cfg.rgb_shift_prob:
    x = x + rng.uniform(-cfg.rgb_shift_limit, cfg.rgb_shift_limit, size=3).astype(np.float32)
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def pad_to_square(image: np.ndarray, gt: np.ndarray, depth: np.ndarray | None, size: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
  """Pad bottom/right to (size, size): image 0, gt ignore, depth 0."""
  h, w = gt.shape
  pads = ((0, size - h), (0, size - w))
  image = np.pad(image, pads + ((0, 0),))
  gt = np.pad(gt, pads, constant_values=IGNORE)
  if depth is not None:
    depth = np.pad(depth, pads)
  return image, gt, depth


def augment(image: np.ndarray, gt: np.ndarray, depth: np.ndarray | None,
            rng: np.random.Generator, cfg: AugmentConfig
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
  """Full augmentation to model space.

  Args:
    image: (H, W, 3) uint8; gt: (H, W) int8 1/0/-1; depth: (H, W) float32 or None.
  Returns:
    image (S, S, 3) uint8, gt (S, S) int8, depth (S, S) float32 or None, and content (S, S)
    bool: pixels that come from the source image (False on padding and where the warp
    pulled from outside the source); S = cfg.size.
  """
  if cfg.enabled:
    image, gt, depth = flip_rotate([image, gt, depth], rng, cfg)
  image, gt, depth = fit_longest_side(image, gt, depth, cfg.size)
  content = np.ones(gt.shape, np.uint8)
  if cfg.enabled:
    m = random_affine(gt.shape, rng, cfg)
    image, gt, depth = warp(image, gt, depth, m)
    content = cv2.warpAffine(content, m, content.shape[::-1], flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    image = color_jitter(image, rng, cfg) * content[..., None]  # jitter must not light up borders
  h, w = gt.shape
  content = np.pad(content.astype(bool), ((0, cfg.size - h), (0, cfg.size - w)))
  return pad_to_square(image, gt, depth, cfg.size) + (content,)
