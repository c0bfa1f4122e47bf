"""The jitted click loop against a per-click host loop that uses the NumPy oracle."""


import numpy as np
import pytest
from scipy import ndimage

from ois_jax.evaluation import evaluator, reference


import fake_model  # tests/evaluation/fake_model.py (on sys.path via tests/conftest.py)


def _samples(rng, n):
  out = []
  for i in range(n):
    h, w = (int(v) for v in rng.integers(20, 60, 2))
    gt = (ndimage.uniform_filter(rng.random((h, w)), 9) > 0.5).astype(np.int8)
    gt[rng.random((h, w)) < 0.03] = -1
    gt[h // 3, :] = 1  # a thin structure touching both borders
    image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    image[gt == 1] //= 2
    out.append(fake_model.prepared(f"s{i}", image, gt))
  return out


@pytest.fixture(scope="module")
def runner():
  cfg = fake_model.config()
  return evaluator.ClickLoopRunner(None, cfg, max_clicks=8, fns=fake_model.FNS)


def test_jitted_loop_equals_host_loop(runner):
  rng = np.random.default_rng(0)
  items = _samples(rng, 6)
  # The second batch is partial: its dummy row must not disturb the real ones.
  for chunk in (items[:3], items[3:5]):
    images, batch = evaluator.make_batch(chunk, 3, (64, 64), runner.input_size)
    fast, _ = runner.run(fake_model.PARAMS, images, batch)
    slow = reference.host_loop(runner, fake_model.PARAMS, images, batch)
    k = len(chunk)
    np.testing.assert_array_equal(fast.ys[:k], slow.ys[:k])
    np.testing.assert_array_equal(fast.xs[:k], slow.xs[:k])
    np.testing.assert_array_equal(fast.positive[:k], slow.positive[:k])
    np.testing.assert_allclose(fast.ious[:k], slow.ious[:k], atol=1e-6)
    # The sequences are not degenerate: both signs occur and the IoU changes.
    assert fast.positive[:k].any() and (~fast.positive[:k]).any()
    assert np.ptp(fast.ious[:k]) > 0
