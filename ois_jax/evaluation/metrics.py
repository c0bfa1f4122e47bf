"""Metrics of the standard protocol (RITM / SimpleClick / SegNext; docs/method.md), from per-sample IoU curves.

`ious` is (num_samples, max_clicks): ious[i, k - 1] is sample i's IoU after k clicks, with all
clicks run (no early stop). mIoU values are fractions in [0, 1] (the console table prints percent).
"""

import time
from typing import Callable

import numpy as np

THRESHOLDS = (0.85, 0.90, 0.95)


def iou(gt, pred, valid=None):
  """IoU of `pred` with the object (gt == 1), ignore pixels (gt == -1) removed from both sets.

  gt: (..., H, W) int 1 / 0 / -1; pred: (..., H, W) bool; valid: optional (..., H, W) bool region
  (pixels outside it count as ignore, e.g. canvas padding). Returns (...) float32; an empty union
  counts as 1. NumPy arrays give NumPy, JAX arrays (traced ones too) give JAX: the one IoU of the
  oracle, the jitted click loop and the training metrics.
  """
  import jax
  import jax.numpy as jnp
  xp = jnp if any(isinstance(a, jax.Array) for a in (gt, pred, valid)) else np
  keep = gt != -1
  if valid is not None:
    keep = keep & valid
  obj = gt == 1
  inter = xp.sum(pred & obj & keep, axis=(-2, -1))
  union = xp.sum((pred | obj) & keep, axis=(-2, -1))
  return xp.where(union > 0, inter / xp.maximum(union, 1), 1.0).astype(xp.float32)


def noc(ious: np.ndarray, threshold: float) -> np.ndarray:
  """(N, K) -> (N,) int: 1-based index of the first click with IoU >= threshold, else K."""
  ious = np.asarray(ious)
  reached = ious >= threshold
  first = np.argmax(reached, axis=1) + 1
  return np.where(reached.any(axis=1), first, ious.shape[1])


def nof(ious: np.ndarray, threshold: float) -> int:
  """Samples whose NoC@threshold is K (max clicks), including one reaching it exactly at click K."""
  ious = np.asarray(ious)
  return int(np.sum(noc(ious, threshold) == ious.shape[1]))


def miou(ious: np.ndarray) -> np.ndarray:
  """(N, K) -> (K,) mean IoU after k = 1..K clicks."""
  return np.asarray(ious, np.float64).mean(axis=0)


def summarize(ious: np.ndarray, spc: float | None = None) -> dict:
  """The metrics dict: NoC85/90/95, NoF85/90/95, mIoU@1..K, SPC, num_samples.

  Empty input (every sample skipped) gives NaN metrics and NoF 0, never an exception.
  """
  ious = np.asarray(ious, np.float64)
  if ious.ndim != 2:
    raise ValueError(f"ious must be (num_samples, max_clicks), got {ious.shape}")
  out = {}
  empty = ious.shape[0] == 0
  for t in THRESHOLDS:
    key = round(t * 100)
    out[f"NoC{key}"] = float("nan") if empty else float(noc(ious, t).mean())
  for t in THRESHOLDS:
    out[f"NoF{round(t * 100)}"] = 0 if empty else nof(ious, t)
  curve = np.full(ious.shape[1], np.nan) if empty else miou(ious)
  for k, value in enumerate(curve, start=1):
    out[f"mIoU@{k}"] = float(value)
  out["SPC"] = float("nan") if spc is None else float(spc)
  out["num_samples"] = int(ious.shape[0])
  out["max_clicks"] = int(ious.shape[1])
  return out


def sat_latency(segment_grid: Callable[[], object], repeats: int = 3) -> dict:
  """Wall time of `segment_grid()` (one image, 16x16 = 256 single-click prompts), after a warm-up.

  `segment_grid` must block until its result is ready (see `reference.make_sat_fn`).
  Returns {'SAT': best seconds, 'SAT_runs': [seconds, ...], 'SAT_compile': first call seconds}.
  """
  start = time.perf_counter()
  segment_grid()
  compile_s = time.perf_counter() - start
  runs = []
  for _ in range(repeats):
    start = time.perf_counter()
    segment_grid()
    runs.append(time.perf_counter() - start)
  return {"SAT": min(runs), "SAT_runs": runs, "SAT_compile": compile_s}


def grid_clicks(height: int, width: int, grid: int = 16) -> np.ndarray:
  """(grid*grid, 2) int (y, x) original-resolution points of a regular grid (cell centres)."""
  ys = ((np.arange(grid) + 0.5) * height / grid).astype(np.int64)
  xs = ((np.arange(grid) + 0.5) * width / grid).astype(np.int64)
  yy, xx = np.meshgrid(ys, xs, indexing="ij")
  return np.stack([yy.ravel(), xx.ravel()], axis=-1)
