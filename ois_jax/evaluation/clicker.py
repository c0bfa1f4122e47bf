"""NumPy/SciPy next-click oracle of the standard protocol (RITM `Clicker`; docs/method.md).

This is the reference the jitted JAX simulator (`simulator.py`) is tested against, and the
click source of the per-click host loop used by tests and benchmarks.
"""

import numpy as np
from scipy import ndimage

from ois_jax.evaluation import metrics


def error_distances(gt: np.ndarray, pred: np.ndarray, clicked: np.ndarray):
  """Distance maps of the false-negative and false-positive regions, as the protocol defines.

  Args:
    gt: (H, W) int, 1 object / 0 background / -1 ignore.
    pred: (H, W) bool prediction.
    clicked: (H, W) bool, pixels that were already clicked.
  Returns:
    (fn_dt, fp_dt): (H, W) float32 each, zero on already-clicked pixels.
  """
  gt = np.asarray(gt)
  pred = np.asarray(pred, bool)
  not_ignore = gt != -1
  obj = gt == 1
  fn = obj & ~pred & not_ignore
  fp = ~obj & pred & not_ignore
  not_clicked = ~np.asarray(clicked, bool)
  # The 1-pixel zero padding makes the image border count as boundary.
  fn_dt = ndimage.distance_transform_edt(np.pad(fn, 1)).astype(np.float32)[1:-1, 1:-1]
  fp_dt = ndimage.distance_transform_edt(np.pad(fp, 1)).astype(np.float32)[1:-1, 1:-1]
  return fn_dt * not_clicked, fp_dt * not_clicked


def next_click(gt: np.ndarray, pred: np.ndarray, clicked: np.ndarray) -> tuple[int, int, bool]:
  """The next click of the standard protocol.

  Args:
    gt: (H, W) int, 1 object / 0 background / -1 ignore.
    pred: (H, W) bool, the current prediction (all False before the first click).
    clicked: (H, W) bool, pixels already clicked (they get distance 0).
  Returns:
    (y, x, is_positive) at the resolution of `gt`. A tie between the two error maxima gives a
    negative click; the click is the first pixel in row-major order that attains the maximum,
    so with no error left at all it is a negative click at (0, 0).
  """
  gt = np.asarray(gt)
  if gt.ndim != 2 or np.shape(pred) != gt.shape or np.shape(clicked) != gt.shape:
    raise ValueError(f"next_click: gt {gt.shape}, pred {np.shape(pred)} and clicked "
                     f"{np.shape(clicked)} must be the same (H, W)")
  fn_dt, fp_dt = error_distances(gt, pred, clicked)
  fn_max, fp_max = fn_dt.max(), fp_dt.max()
  is_positive = bool(fn_max > fp_max)
  dt, dmax = (fn_dt, fn_max) if is_positive else (fp_dt, fp_max)
  flat = int(np.flatnonzero(dt.ravel() == dmax)[0])
  y, x = divmod(flat, gt.shape[1])
  return y, x, is_positive


def iou(gt: np.ndarray, pred: np.ndarray) -> float:
  """IoU of `pred` (H, W) bool with the object of `gt` (H, W), ignore removed (`metrics.iou`)."""
  return float(metrics.iou(np.asarray(gt), np.asarray(pred, bool)))
