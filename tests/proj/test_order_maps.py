"""The order-map experiment's degradations of a depth map (experiments/order_maps.py)."""

import numpy as np

from ois_jax.proj.miniature.experiments.order_maps import best_region_iou, degrade


def step_depth(size=32):
  d = np.zeros((size, size), np.float32)
  d[8:24, 8:24] = 1.0  # a flat object in front of a flat ground
  return d


def test_sharp_depth_separates_the_object_and_degrading_it_does_not():
  d = step_depth()
  target = d > 0.5
  click = (16, 16)
  sharp = best_region_iou(np.abs(d - d[click]), target, click)
  assert sharp == 1.0
  for blurred in (degrade(d, blur=2.0), degrade(d, pool=4)):
    assert np.isclose(blurred.mean(), d.mean(), atol=0.02)  # the same depth, less sharp
    assert best_region_iou(np.abs(blurred - blurred[click]), target, click) < sharp


def test_pooling_is_constant_per_cell_before_the_upsampling_and_noise_is_seeded():
  d = step_depth()
  assert np.array_equal(degrade(d, pool=32), d)           # a cell a pixel: unchanged
  noisy = degrade(d, noise=0.05, seed=3)
  assert np.array_equal(noisy, degrade(d, noise=0.05, seed=3))
  assert 0.03 < np.std(noisy - d) < 0.07                   # 5 % of the range
