"""Click slots, sparse slot embeddings and dense click maps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.errors import ClickError
from ois_jax.models import prompts
from ois_jax.models.prompts import Clicks


def test_from_lists_fills_sign_slots_in_click_order():
  c = Clicks.from_lists([[(1, 2, True), (3, 4, False), (5, 6, True)], []])
  assert c.coords.shape == (2, 48, 2) and c.valid.shape == (2, 48)
  np.testing.assert_array_equal(np.nonzero(c.valid[0])[0], [0, 1, 24])
  np.testing.assert_array_equal(c.coords[0, [0, 1, 24]], [[1, 2], [5, 6], [3, 4]])
  assert not c.valid[1].any()


@pytest.mark.parametrize("sign", [True, False])
def test_from_lists_rejects_25_clicks_of_one_sign(sign):
  with pytest.raises(ClickError, match="more than 24 " + ("positive" if sign else "negative")):
    Clicks.from_lists([[(i, i, sign) for i in range(25)]])
  Clicks.from_lists([[(i, i, sign) for i in range(24)]])  # 24 fit


def test_add_is_jittable_and_fills_first_free_slot_of_its_sign():
  c = Clicks.from_lists([[(1, 1, True)], [(2, 2, False)]])
  add = jax.jit(lambda c, yx, pos, act: c.add(yx, pos, act))
  out = add(c, jnp.array([[7., 8.], [9., 10.]]), jnp.array([True, False]), jnp.array([True, True]))
  np.testing.assert_array_equal(np.nonzero(out.valid[0])[0], [0, 1])
  np.testing.assert_array_equal(out.coords[0, 1], [7, 8])
  np.testing.assert_array_equal(np.nonzero(out.valid[1])[0], [24, 25])
  np.testing.assert_array_equal(out.coords[1, 25], [9, 10])
  inactive = add(c, jnp.zeros((2, 2)), jnp.array([True, True]), jnp.array([False, False]))
  np.testing.assert_array_equal(inactive.valid, c.valid)
  full = Clicks.from_lists([[(i, i, True) for i in range(24)]])
  dropped = full.add(jnp.array([[50., 50.]]), jnp.array([True]))
  np.testing.assert_array_equal(dropped.valid, full.valid)  # no free positive slot: dropped


def test_fourier_features_follow_sam_formula():
  rng = np.random.default_rng(0)
  gaussian = rng.normal(size=(2, 8)).astype(np.float32)
  coords = np.array([[0.0, 0.0], [13.0, 99.5]], np.float32)
  unit = (coords + 0.5) / 112 * 2 - 1
  proj = 2 * np.pi * unit @ gaussian
  expected = np.concatenate([np.sin(proj), np.cos(proj)], -1)
  np.testing.assert_allclose(prompts.fourier_features(jnp.asarray(coords), gaussian, 112), expected,
                             rtol=1e-5, atol=1e-5)


def test_sparse_embeddings_empty_slots_get_non_point_and_ignore_coordinates():
  enc = prompts.SparsePromptEncoder(16, 112)
  pe = prompts.PositionEncoding(16, 112)
  c = Clicks.from_lists([[(10, 20, True), (30, 40, False)]])
  pe_params = pe.init(jax.random.key(0), c.coords)
  point_pe = pe.apply(pe_params, c.coords)
  params = enc.init(jax.random.key(1), c, point_pe)
  out = enc.apply(params, c, point_pe)[0]
  p = params["params"]
  np.testing.assert_allclose(out[0], point_pe[0, 0] + p["positive_embed"], rtol=1e-6)
  np.testing.assert_allclose(out[24], point_pe[0, 24] + p["negative_embed"], rtol=1e-6)
  for slot in (1, 23, 25, 47):
    np.testing.assert_array_equal(out[slot], p["not_a_point_embed"])
  # Coordinates of empty slots are irrelevant.
  garbage = Clicks(c.coords.copy(), c.valid)
  garbage.coords[0, 5] = (99, 3)
  out2 = enc.apply(params, garbage, pe.apply(pe_params, garbage.coords))[0]
  np.testing.assert_array_equal(out, out2)


def test_disk_maps_hand_checked():
  c = Clicks.from_lists([[(5, 5, True), (0, 9, False)]])
  c.coords[0, 3] = (2, 2)  # an empty slot's coordinates must not draw a disk
  maps = np.asarray(prompts.disk_maps(c, 10, 2.0))[0]
  yy, xx = np.mgrid[:10, :10]
  np.testing.assert_array_equal(maps[..., 0], ((yy - 5) ** 2 + (xx - 5) ** 2 <= 4).astype(np.float32))
  np.testing.assert_array_equal(maps[..., 1], ((yy - 0) ** 2 + (xx - 9) ** 2 <= 4).astype(np.float32))
  assert maps[..., 0].sum() == 13  # the radius-2 disk


def test_disk_radius_scales_with_input_size():
  assert prompts.disk_radius(5, 1024) == 5
  assert prompts.disk_radius(5, 518) == pytest.approx(5 * 518 / 1024)
  assert prompts.disk_radius(5, 112) == 1.0  # at least one pixel


def test_dense_encoder_is_a_stride_14_patchify():
  enc = prompts.DensePromptEncoder(8, 56, 1.0)
  empty = Clicks.empty(1)
  params = enc.init(jax.random.key(0), empty)
  base = enc.apply(params, empty)
  assert base.shape == (1, 4, 4, 8)
  one = enc.apply(params, Clicks.from_lists([[(20, 35, True)]]))  # patch (1, 2)
  changed = np.abs(np.asarray(one - base)).sum(-1)[0] > 0
  expected = np.zeros((4, 4), bool)
  expected[1, 2] = True
  np.testing.assert_array_equal(changed, expected)
  # The same conv applied by hand to the 2-channel map.
  maps = prompts.disk_maps(Clicks.from_lists([[(20, 35, True)]]), 56, 1.0)
  kernel = params["params"]["proj"]["kernel"]
  patch = maps[0, 14:28, 28:42]
  manual = jnp.einsum("hwc,hwco->o", patch, kernel) + params["params"]["proj"]["bias"]
  np.testing.assert_allclose(one[0, 1, 2], manual, rtol=1e-5, atol=1e-6)
