"""The JAX simulator and EDT against the NumPy/SciPy oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from ois_jax.evaluation import clicker, edt, next_click, simulator

CANVAS = (40, 40)


def _random_case(rng, kind):
  """(gt int8, pred bool, clicked bool) of random size, in one of several hard regimes."""
  h, w = (int(v) for v in rng.integers(1, CANVAS[0] + 1, 2))
  obj = rng.random((h, w)) < rng.uniform(0.05, 0.95)
  if kind == "blobs":  # smooth shapes: large interior distances, many exact ties
    obj = ndimage.uniform_filter(rng.random((h, w)), size=5) > 0.5
  elif kind == "thin":  # 1-pixel lines
    obj = np.zeros((h, w), bool)
    obj[rng.integers(0, h), :] = True
    obj[:, rng.integers(0, w)] = True
  elif kind == "border":  # objects touching the image border
    obj = np.zeros((h, w), bool)
    obj[: max(1, h // 2), :] = True
  elif kind == "rect":  # rectangles: symmetric, many equal maxima
    obj = np.zeros((h, w), bool)
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    obj[y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = True
  gt = obj.astype(np.int8)
  if rng.random() < 0.4:
    gt[rng.random((h, w)) < rng.uniform(0, 0.3)] = -1
  pred_kind = rng.integers(0, 5)
  if pred_kind == 0:
    pred = np.zeros((h, w), bool)  # empty prediction (the first click)
  elif pred_kind == 1:
    pred = np.ones((h, w), bool)  # full prediction
  elif pred_kind == 2:
    pred = obj.copy()  # perfect: only ignore-free pixels left, often both distances 0
  elif pred_kind == 3:
    pred = ~obj  # inverted: fn and fp regions mirror each other, ties likely
  else:
    pred = rng.random((h, w)) < rng.uniform(0, 1)
  clicked = rng.random((h, w)) < rng.uniform(0, 0.2)
  return gt, pred, clicked


def _on_canvas(cases):
  n = len(cases)
  gt = np.zeros((n,) + CANVAS, np.int8)
  # Junk outside the real region must not matter.
  pred = np.ones((n,) + CANVAS, bool)
  clicked = np.zeros((n,) + CANVAS, bool)
  valid = np.zeros((n,) + CANVAS, bool)
  for i, (g, p, c) in enumerate(cases):
    h, w = g.shape
    gt[i, :h, :w], pred[i, :h, :w], clicked[i, :h, :w], valid[i, :h, :w] = g, p, c, True
    gt[i, h:, :] = 1
    gt[i, :, w:] = 1
  return gt, pred, clicked, valid


@pytest.mark.parametrize("method", ["envelope", "offsets"])
def test_simulator_equals_oracle_on_1200_cases(method):
  simulate = jax.jit(lambda *a: simulator.next_click(*a, edt_method=method))
  rng = np.random.default_rng(1234)
  kinds = ["random", "blobs", "thin", "border", "rect"]
  cases = [_random_case(rng, kinds[i % len(kinds)]) for i in range(1200)]
  gt, pred, clicked, valid = _on_canvas(cases)
  gt = np.where(valid, gt, 0).astype(np.int8)  # the evaluator zeroes gt outside; pred stays junk
  y, x, positive = (np.asarray(a) for a in simulate(gt, pred, clicked, valid))
  expected = [next_click(*case) for case in cases]
  ties = both_zero = 0
  for i, (case, (ey, ex, ep)) in enumerate(zip(cases, expected)):
    assert (int(y[i]), int(x[i]), bool(positive[i])) == (ey, ex, ep), f"case {i}"
    fn_dt, fp_dt = clicker.error_distances(*case)
    ties += fn_dt.max() == fp_dt.max() and fn_dt.max() > 0
    both_zero += fn_dt.max() == 0 and fp_dt.max() == 0
  # The hard regimes really occurred.
  assert ties >= 10 and both_zero >= 10, (ties, both_zero)


def test_oracle_hand_cases():
  gt = np.zeros((5, 7), np.int8)
  gt[1:4, 1:6] = 1
  empty = np.zeros_like(gt, bool)
  # First click: deepest interior point of gt, first in row-major order among the 3 centre pixels.
  assert next_click(gt, empty, empty) == (2, 2, True)
  # Perfect prediction: both distances zero -> negative click at the first pixel.
  assert next_click(gt, gt == 1, empty) == (0, 0, False)
  # Tie: fn and fp regions of equal depth -> negative.
  gt2 = np.zeros((3, 6), np.int8)
  gt2[:, :3] = 1
  pred2 = np.zeros((3, 6), bool)
  pred2[:, 3:] = True
  assert next_click(gt2, pred2, np.zeros_like(pred2)) == (1, 4, False)
  # Ignore pixels are neither fn nor fp.
  gt3 = gt.copy()
  gt3[1:4, 1:6] = -1
  assert next_click(gt3, empty, empty) == (0, 0, False)
  # Already clicked pixels are skipped.
  clicked = empty.copy()
  clicked[2, 2] = True
  assert next_click(gt, empty, clicked) == (2, 3, True)


@pytest.mark.parametrize("method", ["offsets", "envelope"])
def test_edt_equals_scipy_exactly(method):
  rng = np.random.default_rng(7)
  f = jax.jit(lambda m: edt.squared_edt(m, method))
  masks = []
  for i in range(60):
    h, w = (int(v) for v in rng.integers(1, 48, 2))
    m = rng.random((h, w)) < rng.uniform(0.3, 1.0)
    if i % 3 == 0:
      m = ndimage.uniform_filter(rng.random((h, w)), 7) > 0.45
    if i % 10 == 0:
      m[:] = True  # no background at all: only the padding bounds the distance
    masks.append(m)
  # One compiled call: bottom/right zero padding up to the canvas is the same as the 1-pixel
  # padding (background), so each padded mask's top-left crop must equal SciPy's result.
  batch = np.stack([np.pad(m, ((0, 48 - m.shape[0]), (0, 48 - m.shape[1]))) for m in masks])
  squared = np.asarray(f(batch))
  dist = np.asarray(jax.jit(lambda m: edt.edt(m, method))(batch))
  for m, sq, d in zip(masks, squared, dist):
    h, w = m.shape
    expected = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    np.testing.assert_array_equal(sq[:h, :w], np.round(expected**2).astype(np.int64))
    np.testing.assert_array_equal(d[:h, :w], expected.astype(np.float32))


@pytest.mark.parametrize("method", ["offsets", "envelope"])
def test_edt_large_image_exact(method):
  yy, xx = np.mgrid[:300, :420]
  m = ((yy - 150) ** 2 / 140**2 + (xx - 200) ** 2 / 190**2) < 1
  m[100:110, 50:350] = False
  m[250:, 400:] = True  # touches the border
  expected = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
  np.testing.assert_array_equal(np.asarray(jax.jit(lambda a: edt.squared_edt(a, method))(m)),
                                np.round(expected**2).astype(np.int64))


def test_iou_matches_oracle():
  rng = np.random.default_rng(3)
  for _ in range(20):
    gt = rng.integers(-1, 2, (9, 11)).astype(np.int8)
    pred = rng.random((9, 11)) < 0.5
    assert float(simulator.iou(jnp.asarray(gt), jnp.asarray(pred))) == pytest.approx(
        clicker.iou(gt, pred), abs=1e-7)
  gt = -np.ones((4, 4), np.int8)
  assert clicker.iou(gt, np.ones((4, 4), bool)) == 1.0
