"""Image transforms: resize longest side + pad, coordinate and resize-back maps."""

import cv2
import numpy as np
import pytest

from ois_jax import transforms
from ois_jax.errors import ImageError


def _image(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("hw", [(60, 90), (90, 60), (112, 112), (300, 41)])
def test_preprocess_resizes_longest_side_normalises_and_pads(hw):
  image = _image(*hw)
  x, tf = transforms.preprocess(image, 112)
  assert x.shape == (112, 112, 3) and x.dtype == np.float32
  h, w = tf.resized_hw
  assert max(h, w) == 112 and tf.orig_hw == hw
  assert tf.scale == pytest.approx(112 / max(hw))
  expected = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
  np.testing.assert_allclose(x[:h, :w], (expected - transforms.MEAN) / transforms.STD, atol=1e-5)
  assert not x[h:].any() and not x[:, w:].any()  # zero padding bottom/right, after normalising


def test_to_model_coords_formula():
  tf = transforms.make_transform((200, 100), 112)
  np.testing.assert_allclose(tf.to_model_coords([[0, 0], [199, 99]]),
                             [[0.5 * 0.56 - 0.5] * 2, [199.5 * 0.56 - 0.5, 99.5 * 0.56 - 0.5]], rtol=1e-6)


@pytest.mark.parametrize("hw", [(60, 90), (300, 41)])
def test_resize_back_matrices_crop_and_bilinear(hw):
  tf = transforms.make_transform(hw, 112)
  mh, mw = tf.resize_back_matrices()
  assert mh.shape == (hw[0], 112) and mw.shape == (hw[1], 112)
  logits = np.random.default_rng(1).normal(size=(112, 112)).astype(np.float32)
  h, w = tf.resized_hw
  expected = cv2.resize(logits[:h, :w], (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
  np.testing.assert_allclose(mh @ logits @ mw.T, expected, atol=1e-4)
  np.testing.assert_allclose(transforms.postprocess(logits, tf), expected, atol=1e-4)


def test_map_to_model_resizes_and_zero_pads():
  tf = transforms.make_transform((60, 90), 112)
  mask = np.random.default_rng(2).random((60, 90)).astype(np.float32)
  out = transforms.map_to_model(mask, tf)
  h, w = tf.resized_hw
  np.testing.assert_allclose(out[:h, :w], cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR), atol=1e-4)
  assert not out[h:].any() and not out[:, w:].any()


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32), [[1, 2, 3]], np.zeros((0, 5, 3), np.uint8)])
def test_non_images_are_rejected(bad):
  with pytest.raises(ImageError):
    transforms.preprocess(bad, 112)
