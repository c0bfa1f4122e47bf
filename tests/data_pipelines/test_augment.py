"""Augmentations keep image, target and depth aligned; padding and ignore stay ignore."""

import cv2
import numpy as np

from ois_jax.data_pipelines import augment as aug

SIZE = 64


def _coded_sample(h=90, w=120):
  """Image whose colour encodes the labels: red = object, blue = background, green = ignore.
  Depth encodes the object too (1 on the object, 0 elsewhere)."""
  gt = np.zeros((h, w), np.int8)
  cv2.ellipse(gt, (50, 40), (30, 20), 20, 0, 360, 1, -1)
  gt[:, 90:115] = -1
  image = np.zeros((h, w, 3), np.uint8)
  image[gt == 1] = (255, 0, 0)
  image[gt == 0] = (0, 0, 255)
  image[gt == -1] = (0, 255, 0)
  depth = (gt == 1).astype(np.float32)
  return image, gt, depth


def _interior(mask):
  # Area downscaling then bilinear upscaling blurs colour edges over ~3 px.
  return cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0


def test_colour_encoded_labels_survive_augmentation():
  image, gt, depth = _coded_sample()
  cfg = aug.AugmentConfig(size=SIZE)
  for seed in range(25):
    im, g, d, content = aug.augment(image, gt, depth, np.random.default_rng(seed), cfg)
    assert im.shape == (SIZE, SIZE, 3) and im.dtype == np.uint8
    assert g.shape == (SIZE, SIZE) and g.dtype == np.int8 and d.shape == (SIZE, SIZE)
    r, gr, b = (im[..., c].astype(int) for c in range(3))
    obj, bg = _interior(g == 1), _interior(g == 0)
    # Colour jitter moves all channels alike, so the dominant channel still names the label.
    assert obj.sum() > 0
    assert (r[obj] > b[obj]).all() and (r[obj] > gr[obj]).all()
    assert (b[bg] > r[bg]).all() and (b[bg] > gr[bg]).all()
    # Green (ignore-coded) pixels well inside the green band are ignore in the target.
    green = _interior((gr > r + 100) & (gr > b + 100))
    assert (g[green] == -1).all()
    # Depth follows the object.
    assert (d[obj] > 0.5).all() and (d[bg] < 0.5).all()
    # Non-content (padding, warped-in border) is ignore with zero image and depth.
    assert (g[~content] == -1).all() and not im[~content].any() and not d[~content].any()
    # The frame is 4:3 like the source (3:4 after a 90 degree turn): the last 16 rows or
    # columns are padding.
    assert not content[-16:].any() or not content[:, -16:].any()


def test_augmentation_is_deterministic_and_varied():
  image, gt, depth = _coded_sample()
  cfg = aug.AugmentConfig(size=SIZE)
  a = aug.augment(image, gt, depth, np.random.default_rng(5), cfg)
  b = aug.augment(image, gt, depth, np.random.default_rng(5), cfg)
  for x, y in zip(a[:3], b[:3]):
    np.testing.assert_array_equal(x, y)
  areas = [(aug.augment(image, gt, None, np.random.default_rng(s), cfg)[1] == 1).sum()
           for s in range(20)]
  assert np.std(areas) > 0.05 * np.mean(areas)  # random resize changes the object scale


def test_disabled_augmentation_is_resize_and_pad_only():
  image, gt, depth = _coded_sample(h=60, w=30)
  cfg = aug.AugmentConfig(size=SIZE, enabled=False)
  im, g, d, content = aug.augment(image, gt, depth, np.random.default_rng(0), cfg)
  assert content[:, :32].all() and not content[:, 32:].any()
  expected = cv2.resize(gt.astype(np.int16), (32, 64), interpolation=cv2.INTER_NEAREST)
  np.testing.assert_array_equal(g[:, :32], expected)
  assert (g[:, 32:] == -1).all()


def test_flip_rotate_moves_all_arrays_together():
  a = np.arange(12).reshape(3, 4)
  rgb = np.stack([a, a + 100, a + 200], -1)
  for seed in range(10):
    out_a, out_rgb, none = aug.flip_rotate([a, rgb, None], np.random.default_rng(seed),
                                           aug.AugmentConfig())
    assert none is None
    np.testing.assert_array_equal(out_rgb[..., 0], out_a)
    np.testing.assert_array_equal(out_rgb[..., 2], out_a + 200)
    assert sorted(out_a.ravel()) == list(range(12))
