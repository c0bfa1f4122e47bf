"""Multi-point click sampler: placement, counts, slot layout, determinism, count law."""

import numpy as np
import pytest

from ois_jax.data_pipelines import click_sampler as cs


def _scene():
  gt = np.zeros((64, 80), np.int8)
  gt[10:40, 15:50] = 1          # the object
  gt[50:60, :] = -1              # an ignore band
  others = np.zeros(gt.shape, bool)
  others[5:30, 60:75] = True     # another annotated object (background for this target)
  return gt, others


def _split(coords, valid, num_pos=24):
  pos = coords[:num_pos][valid[:num_pos]].astype(int)
  neg = coords[num_pos:][valid[num_pos:]].astype(int)
  return pos, neg


def test_clicks_land_on_the_right_side_and_respect_slots():
  gt, others = _scene()
  for seed in range(60):
    coords, valid = cs.sample_clicks(gt, np.random.default_rng(seed), others=others)
    assert coords.shape == (48, 2) and coords.dtype == np.float32
    assert valid.shape == (48,) and valid.dtype == bool
    n_pos, n_neg = valid[:24].sum(), valid[24:].sum()
    assert 1 <= n_pos <= 24 and 0 <= n_neg <= 24
    # Valid slots are packed at the start of each half; unused slots are zero.
    assert valid[:n_pos].all() and valid[24:24 + n_neg].all()
    assert not coords[~valid].any()
    pos, neg = _split(coords, valid)
    assert (gt[pos[:, 0], pos[:, 1]] == 1).all()
    if len(neg):
      assert (gt[neg[:, 0], neg[:, 1]] == 0).all()  # never on the object nor on ignore
    # A pixel is clicked at most once.
    assert len({tuple(p) for p in pos}) == len(pos)
    assert len({tuple(p) for p in neg}) == len(neg)


def test_first_positive_in_object_core():
  gt, _ = _scene()
  dist = cs.distance_inside(gt == 1)
  for seed in range(30):
    coords, _ = cs.sample_clicks(gt, np.random.default_rng(seed))
    y, x = coords[0].astype(int)
    assert dist[y, x] > dist.max() / cs.FIRST_POINT_K


def test_deterministic_for_a_rng_state():
  gt, others = _scene()
  a = cs.sample_clicks(gt, np.random.default_rng(3), others=others)
  b = cs.sample_clicks(gt, np.random.default_rng(3), others=others)
  c = cs.sample_clicks(gt, np.random.default_rng(4), others=others)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))


def test_max_points_limits_counts():
  gt, _ = _scene()
  for seed in range(40):
    _, valid = cs.sample_clicks(gt, np.random.default_rng(seed), max_points=3)
    assert 1 <= valid[:24].sum() <= 3 and valid[24:].sum() <= 3


def test_point_counts_follow_the_gamma_law():
  gt, _ = _scene()
  rng = np.random.default_rng(0)
  n = 800
  pos = np.array([cs.sample_clicks(gt, rng, max_points=4)[1][:24].sum() for _ in range(n)])
  expected = cs.count_probs(4, 0.8, include_zero=False)  # P(1..4 positives)
  observed = np.bincount(pos, minlength=5)[1:] / n
  np.testing.assert_allclose(observed, expected, atol=0.05)
  np.testing.assert_allclose(expected[1] / expected[0], 0.8)


def test_negatives_use_other_objects_and_the_ring():
  gt, others = _scene()
  obj = gt == 1
  ring = cs._ring(obj)
  rng = np.random.default_rng(1)
  on_others = on_ring = total = 0
  for _ in range(200):
    coords, valid = cs.sample_clicks(gt, rng, others=others)
    _, neg = _split(coords, valid)
    total += len(neg)
    on_others += others[neg[:, 0], neg[:, 1]].sum() if len(neg) else 0
    on_ring += ring[neg[:, 0], neg[:, 1]].sum() if len(neg) else 0
  # Region probabilities 0.4 (others) and 0.5 (ring); the whole-background draws add a bit.
  assert 0.3 < on_others / total < 0.55
  assert 0.4 < on_ring / total < 0.7


def test_empty_object_is_rejected():
  with pytest.raises(ValueError, match="no object"):
    cs.sample_clicks(np.zeros((8, 8), np.int8), np.random.default_rng(0))
