"""Order maps (Eq. 1-2) on hand-made depth maps, depth normalisation, object regions."""

import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.models import order
from ois_jax.models.prompts import Clicks


def _depth():
  """28x28 (2x2 tokens): four constant quadrants plus a ramp in the bottom-right one."""
  d = np.zeros((28, 28), np.float32)
  d[:14, :14] = 0.1
  d[:14, 14:] = 0.9
  d[14:, :14] = 0.5
  d[14:, 14:] = np.linspace(0, 1, 14)[None, :]
  return d


def test_order_maps_equal_eq1_eq2():
  d = _depth()
  c = Clicks.from_lists([[(3, 3, True), (20, 5, True), (2, 20, False), (20, 14, False)]])
  m_p, m_n = order.order_maps_pixels(jnp.asarray(d)[None], c.coords, c.valid, 24)
  mean_pos = (d[3, 3] + d[20, 5]) / 2  # Eq. 1: mean over the positive clicks
  np.testing.assert_allclose(m_p[0], np.abs(d - mean_pos), atol=1e-6)
  np.testing.assert_allclose(m_n[0, 0], np.abs(d - d[2, 20]), atol=1e-6)  # Eq. 2, click 1
  np.testing.assert_allclose(m_n[0, 1], np.abs(d - d[20, 14]), atol=1e-6)  # Eq. 2, click 2
  assert not np.asarray(m_n[0, 2:]).any()  # empty negative slots: zero maps


def test_click_depth_is_read_at_the_nearest_pixel():
  d = np.zeros((1, 28, 28), np.float32)
  d[0, 4, 7] = 1.0
  v = order.sample_depth(jnp.asarray(d), jnp.array([[[4.4, 6.6], [3.4, 7.0]]]))
  np.testing.assert_array_equal(v, [[1.0, 0.0]])


def test_token_maps_are_patch_means_and_follow_the_sign_switch():
  d = _depth()
  c = Clicks.from_lists([[(3, 3, True), (2, 20, False)]])
  m = np.asarray(order.order_maps_tokens(jnp.asarray(d)[None], c.coords, c.valid, 24, "both"))[0]
  assert m.shape == (48, 4)
  pos = np.abs(d - d[3, 3]).reshape(2, 14, 2, 14).mean((1, 3)).ravel()
  neg = np.abs(d - d[2, 20]).reshape(2, 14, 2, 14).mean((1, 3)).ravel()
  for slot in range(24):  # all positive slots share M_p
    np.testing.assert_allclose(m[slot], pos, atol=1e-6)
  np.testing.assert_allclose(m[24], neg, atol=1e-6)
  assert not m[25:].any()
  only_pos = np.asarray(order.order_maps_tokens(jnp.asarray(d)[None], c.coords, c.valid, 24, "positive"))[0]
  np.testing.assert_allclose(only_pos[0], pos, atol=1e-6)
  assert not only_pos[24:].any()
  only_neg = np.asarray(order.order_maps_tokens(jnp.asarray(d)[None], c.coords, c.valid, 24, "negative"))[0]
  assert not only_neg[:24].any()
  np.testing.assert_allclose(only_neg[24], neg, atol=1e-6)
  with pytest.raises(ValueError, match="order_maps"):
    order.order_maps_tokens(jnp.asarray(d)[None], c.coords, c.valid, 24, "neither")


def test_grid_maps_compare_the_resized_depth_with_the_full_resolution_click_depths():
  d = _depth()
  c = Clicks.from_lists([[(3, 3, True), (20, 22, True), (2, 20, False)]])
  full = np.asarray(order.order_maps_grid(jnp.asarray(d)[None], c.coords, c.valid, 24, 28))[0]
  m_p, m_n = order.order_maps_pixels(jnp.asarray(d)[None], c.coords, c.valid, 24)
  np.testing.assert_allclose(full[0], np.asarray(m_p[0]).ravel(), atol=1e-6)  # same grid: Eq. 1-2
  np.testing.assert_allclose(full[24], np.asarray(m_n[0, 0]).ravel(), atol=1e-6)
  assert not full[25:].any()
  coarse = np.asarray(order.order_maps_grid(jnp.asarray(d)[None], c.coords, c.valid, 24, 4))[0]
  assert coarse.shape == (48, 16)
  # Corners of an align_corners grid are the depth's own corners; the reference is the mean of
  # the positive clicks' full-resolution depths (0.1 and the ramp's value at x = 22).
  mean_pos = (d[3, 3] + d[20, 22]) / 2
  np.testing.assert_allclose(coarse[0, [0, 3, 12, 15]],
                             np.abs(d[[0, 0, 27, 27], [0, 27, 0, 27]] - mean_pos), atol=1e-6)
  only_pos = np.asarray(order.order_maps_grid(jnp.asarray(d)[None], c.coords, c.valid, 24, 4, "positive"))[0]
  assert only_pos[0].any() and not only_pos[24:].any()
  with pytest.raises(ValueError, match="order_maps"):
    order.order_maps_grid(jnp.asarray(d)[None], c.coords, c.valid, 24, 4, "neither")


def test_no_positive_click_gives_zero_positive_map():
  d = _depth()
  c = Clicks.from_lists([[(2, 20, False)]])
  m_p, _ = order.order_maps_pixels(jnp.asarray(d)[None], c.coords, c.valid, 24)
  assert not np.asarray(m_p).any() and np.isfinite(np.asarray(m_p)).all()


def test_normalize_depth_per_image_min_max():
  d = np.stack([np.linspace(2, 6, 16).reshape(4, 4), np.full((4, 4), 3.0)]).astype(np.float32)
  n = np.asarray(order.normalize_depth(jnp.asarray(d)))
  np.testing.assert_allclose(n[0], (d[0] - 2) / 4, atol=1e-6)
  assert n[0].min() == 0 and n[0].max() == 1
  np.testing.assert_array_equal(n[1], 0.0)  # constant depth: zeros, not NaN


def test_object_regions_any_pixel_rule_and_first_round():
  prev = np.zeros((1, 28, 28), np.float32)
  prev[0, :14, :14] = 0.9   # token 0 fully foreground
  prev[0, 14, 14] = 0.8     # token 3: one foreground pixel -> both fg and bg
  allowed = np.asarray(order.object_regions(jnp.asarray(prev), jnp.array([True]), 24, 24, 0.49))[0]
  np.testing.assert_array_equal(allowed[0], [True, False, False, True])   # positive slots
  np.testing.assert_array_equal(allowed[24], [False, True, True, True])   # negative slots
  first = np.asarray(order.object_regions(jnp.asarray(prev), jnp.array([False]), 24, 24))[0]
  assert first.all()  # no previous mask: plain attention
