"""Multi-point click sampler for training (RITM / SimpleClick style).

Given a target mask in model space (int8, 1 object / 0 background / -1 ignore), draws the
initial clicks of a training sample: 1..P positive points inside the object and 0..N negative
points outside it, where P, N follow a geometric law with ratio `prob_gamma` (few points are
likely, many are rare). Points are placed with distance-transform weights so they sit away
from region edges. The output uses the fixed-slot layout of `ois_jax.models.prompts.Clicks`:
slots [0, num_pos) positive, [num_pos, num_pos + num_neg) negative; coords (y, x) float32.

Choices (documented in docs/input_pipeline.md):
- number of positives: 1 + k, k ~ p(k) ∝ gamma^k, k in [0, max_points); number of negatives:
  k ~ p(k) ∝ gamma^k, k in [0, max_points] (RITM's `generate_probs`).
- first positive: uniform over the object's inner core (distance > max distance / 1.7, as
  RITM's `get_point_candidates(k=1.7)`); further positives: without replacement with
  probability ∝ distance to the object boundary.
- each negative draws a region: a ring around the object (p 0.5), other annotated objects
  (p 0.4) or anywhere in the background (p 0.1); within it, probability ∝ distance to the
  region's edge. An empty region falls back to the whole background.
- ignore pixels (-1) never receive clicks; a pixel is clicked at most once.
"""

from __future__ import annotations

import cv2
import numpy as np

NEG_REGION_PROBS = (0.5, 0.4, 0.1)  # border ring, other objects, whole background
FIRST_POINT_K = 1.7
RING_EXPAND = 0.25  # ring width as a fraction of sqrt(object area), at least 3 px


def count_probs(max_points: int, gamma: float, include_zero: bool) -> np.ndarray:
  """Probabilities of drawing 1..max_points (or 0..max_points) points: ∝ gamma^k."""
  n = max_points + 1 if include_zero else max_points
  p = gamma ** np.arange(n, dtype=np.float64)
  return p / p.sum()


def distance_inside(region: np.ndarray) -> np.ndarray:
  """Euclidean distance of each region pixel to the nearest non-region pixel (the image
  border counts as outside). region: (H, W) bool -> (H, W) float32, 0 outside."""
  padded = np.pad(region.astype(np.uint8), 1)
  dt = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
  return dt[1:-1, 1:-1]


def _draw_weighted(weights: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
  """Flat indices of `count` distinct pixels drawn without replacement ∝ weights (H*W,)."""
  nonzero = np.flatnonzero(weights > 0)
  count = min(count, nonzero.size)
  if count == 0:
    return np.zeros((0,), np.int64)
  w = weights[nonzero].astype(np.float64)
  return rng.choice(nonzero, size=count, replace=False, p=w / w.sum())


def _ring(obj: np.ndarray) -> np.ndarray:
  """(H, W) bool band around the object, outside it."""
  width = max(3, int(round(RING_EXPAND * np.sqrt(obj.sum()))))
  # Distance to the nearest object pixel; one O(H W) pass whatever the width.
  dist_to_obj = cv2.distanceTransform((~obj).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
  return (dist_to_obj <= width) & ~obj


def sample_clicks(gt: np.ndarray, rng: np.random.Generator, *, max_points: int = 24,
                  gamma: float = 0.8, num_pos_slots: int = 24, num_neg_slots: int = 24,
                  others: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Initial clicks for one training sample.

  Args:
    gt: (H, W) int8 target, 1 object / 0 background / -1 ignore. Must contain an object pixel.
    rng: numpy Generator (the only source of randomness: same rng state, same clicks).
    max_points: most positive (and most negative) points; <= the slot counts.
    gamma: prob_gamma of the geometric law on the point counts.
    num_pos_slots, num_neg_slots: slot layout of the output.
    others: optional (H, W) bool, pixels of other annotated objects (negative candidates).

  Returns:
    coords (num_pos_slots + num_neg_slots, 2) float32 (y, x) pixel indices, 0 where unused;
    valid (num_pos_slots + num_neg_slots,) bool.
  """
  if gt.ndim != 2:
    raise ValueError(f"gt must be (H, W), got shape {gt.shape}")
  obj = gt == 1
  background = gt == 0
  if not obj.any():
    raise ValueError("gt has no object pixel (label 1)")
  max_pos = min(max_points, num_pos_slots)
  max_neg = min(max_points, num_neg_slots)
  n_pos = 1 + rng.choice(max_pos, p=count_probs(max_pos, gamma, include_zero=False))
  n_neg = rng.choice(max_neg + 1, p=count_probs(max_neg, gamma, include_zero=True))
  width = gt.shape[1]
  coords = np.zeros((num_pos_slots + num_neg_slots, 2), np.float32)
  valid = np.zeros((num_pos_slots + num_neg_slots,), bool)

  # Positives: first in the object's core, the rest ∝ depth inside the object.
  dist = distance_inside(obj)
  core = (dist > dist.max() / FIRST_POINT_K).ravel()
  first = _draw_weighted(core.astype(np.float64), 1, rng)
  weights = dist.ravel().astype(np.float64)
  weights[first] = 0.0
  rest = _draw_weighted(weights, n_pos - 1, rng)
  pos = np.concatenate([first, rest])
  coords[:pos.size] = np.stack([pos // width, pos % width], -1)
  valid[:pos.size] = True

  # Negatives: pick a region per point, then pixels ∝ depth inside that region.
  if n_neg > 0 and background.any():
    kinds = rng.choice(3, size=n_neg, p=NEG_REGION_PROBS)
    region_of_kind = (lambda: _ring(obj) & background,
                      lambda: (others & background) if others is not None else None,
                      lambda: background)
    taken = np.zeros(gt.size, bool)
    neg = []
    for kind in range(3):
      count = int((kinds == kind).sum())
      if count == 0:
        continue
      region = region_of_kind[kind]()
      if region is None or not region.any():  # empty region: fall back to the whole background
        region = background
      w = distance_inside(region).ravel().astype(np.float64)
      w[taken] = 0.0
      idx = _draw_weighted(w, count, rng)
      if idx.size < count:  # region smaller than the request: top up from the background
        w = distance_inside(background).ravel().astype(np.float64)
        w[taken] = 0.0
        w[idx] = 0.0
        idx = np.concatenate([idx, _draw_weighted(w, count - idx.size, rng)])
      taken[idx] = True
      neg.extend(idx.tolist())
    neg = np.asarray(neg, np.int64)
    coords[num_pos_slots:num_pos_slots + neg.size] = np.stack([neg // width, neg % width], -1)
    valid[num_pos_slots:num_pos_slots + neg.size] = True
  return coords, valid
