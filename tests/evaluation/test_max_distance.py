"""`edt.max_distance` (the CPU click simulator's branch and bound) against SciPy, exactly."""

import jax
import numpy as np
import pytest
from scipy import ndimage

from ois_jax.evaluation import edt, next_click, simulator

from test_clicker_simulator import _on_canvas, _random_case  # tests/evaluation is on sys.path


def _scipy_max(mask, keep):
  """(value, first flat index) of the oracle's float32 distances over `keep`."""
  dist = ndimage.distance_transform_edt(np.pad(mask, 1)).astype(np.float32)[1:-1, 1:-1] * keep
  value = dist.max()
  return value, int(np.flatnonzero(dist.ravel() == value)[0])


def _hard_masks(h, w, rng):
  """(name, mask, keep) cases for every branch: large regions, ties across many blocks, thin
  structures, clicked maxima."""
  yy, xx = np.mgrid[:h, :w]
  everything = np.ones((h, w), bool)
  cases = []
  disk = (yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (0.4 * h) ** 2
  cases.append(("disk", disk, everything))
  # A centred bar of odd height: its middle row ties over ~w/4 blocks, far more than one round.
  bar = np.zeros((h, w), bool)
  bar[h // 2 - 9:h // 2 + 10, 3:w - 3] = True
  cases.append(("bar", bar, everything))
  diagonal = np.abs(yy - xx * h / w) < 0.15 * h
  cases.append(("diagonal", diagonal, everything))
  squares = np.zeros((h, w), bool)  # equal squares far apart: the first in row-major order wins
  for y0, x0 in ((h - 30, 10), (10, w - 40), (h // 2 - 12, w // 2)):
    squares[y0:y0 + 25, x0:x0 + 25] = True
  cases.append(("squares", squares, everything))
  cases.append(("all", everything, everything))  # only the border bounds the distance
  cases.append(("empty", np.zeros((h, w), bool), everything))
  thin = np.zeros((h, w), bool)
  thin[:, w // 3] = thin[h // 4, :] = True
  thin[h // 2:h // 2 + 3, :] = True
  cases.append(("thin", thin, everything))
  noise = rng.random((h, w)) < 0.7
  cases.append(("noise", noise, everything))
  blobs = ndimage.uniform_filter(rng.random((h, w)), 25) > 0.5
  cases.append(("blobs", blobs, everything))
  # Clicked pixels: the disk's maximum and the whole deepest 4 x 4 block are excluded.
  value, index = _scipy_max(disk, everything)
  cy, cx = divmod(index, w)
  clicked = np.zeros((h, w), bool)
  clicked[cy - 4:cy + 5, cx - 4:cx + 5] = True
  cases.append(("disk_clicked", disk, ~clicked))
  cases.append(("bar_clicked", bar, rng.random((h, w)) > 0.3))
  cases.append(("all_clicked", disk, np.zeros((h, w), bool)))
  return cases


@pytest.mark.parametrize("shape", [(97, 203), (128, 160)])
def test_max_distance_equals_scipy_on_hard_shapes(shape):
  rng = np.random.default_rng(11)
  cases = _hard_masks(*shape, rng)
  masks = np.stack([m for _, m, _ in cases])
  keeps = np.stack([k for _, _, k in cases])
  value, index = (np.asarray(a) for a in jax.jit(edt.max_distance)(masks, keeps))
  for i, (name, mask, keep) in enumerate(cases):
    expected = _scipy_max(mask, keep)
    assert (value[i], int(index[i])) == expected, name
  # The large regions really are large (the bounded branch, not the small one).
  assert value[0] > 30 and value[1] == 10


def test_bounded_simulator_equals_oracle_on_1200_cases():
  simulate = jax.jit(lambda *a: simulator.next_click(*a, edt_method="bounded"))
  rng = np.random.default_rng(1234)
  kinds = ["random", "blobs", "thin", "border", "rect"]
  cases = [_random_case(rng, kinds[i % len(kinds)]) for i in range(1200)]
  gt, pred, clicked, valid = _on_canvas(cases)
  gt = np.where(valid, gt, 0).astype(np.int8)
  y, x, positive = (np.asarray(a) for a in simulate(gt, pred, clicked, valid))
  for i, case in enumerate(cases):
    assert (int(y[i]), int(x[i]), bool(positive[i])) == next_click(*case), f"case {i}"


def test_bounded_simulator_equals_oracle_on_large_canvases():
  """Realistic sizes: object blobs and predictions that cover, miss and overshoot them."""
  rng = np.random.default_rng(5)
  h, w, canvas = 150, 230, (192, 256)
  cases = []
  for i in range(12):
    obj = ndimage.uniform_filter(rng.random((h, w)), 41) > 0.5
    gt = obj.astype(np.int8)
    gt[rng.random((h, w)) < 0.02] = -1
    pred = ndimage.uniform_filter(rng.random((h, w)), 31 + 10 * (i % 3)) > 0.5
    clicked = np.zeros((h, w), bool)
    if i % 2:  # the previous clicks, where the oracle put them
      for _ in range(5):
        cy, cx, _ = next_click(gt, pred, clicked)
        clicked[cy, cx] = True
    cases.append((gt, pred, clicked))
  n = len(cases)
  gt = np.zeros((n,) + canvas, np.int8)
  pred = np.zeros((n,) + canvas, bool)
  clicked = np.zeros((n,) + canvas, bool)
  valid = np.zeros((n,) + canvas, bool)
  for i, (g, p, c) in enumerate(cases):
    gt[i, :h, :w], pred[i, :h, :w], clicked[i, :h, :w], valid[i, :h, :w] = g, p, c, True
  y, x, positive = (np.asarray(a) for a in jax.jit(
      lambda *a: simulator.next_click(*a, edt_method="bounded"))(gt, pred, clicked, valid))
  for i, case in enumerate(cases):
    assert (int(y[i]), int(x[i]), bool(positive[i])) == next_click(*case), f"case {i}"


def test_column_distance_sequential_equals_cumulative():
  rng = np.random.default_rng(2)
  masks = rng.random((3, 37, 29)) < np.array([0.5, 0.9, 1.0])[:, None, None]
  sequential = jax.jit(lambda m: edt._column_distance(m, sequential=True))(masks)
  cumulative = jax.jit(lambda m: edt._column_distance(m, sequential=False))(masks)
  np.testing.assert_array_equal(np.asarray(sequential), np.asarray(cumulative))
