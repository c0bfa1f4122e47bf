"""ois_jax.io: every image becomes (H, W, 3) uint8 RGB; unreadable files raise ImageError naming them."""

import numpy as np
import pytest
from PIL import Image

from ois_jax.errors import ImageError
from ois_jax.io import depth_to_colors, load_image, save_depth_png

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8)


def _check(arr, shape=(9, 13)):
  assert arr.dtype == np.uint8 and arr.shape == (*shape, 3)


def test_rgb_png(tmp_path):
  Image.fromarray(RGB).save(tmp_path / "a.png")
  out = load_image(str(tmp_path / "a.png"))
  _check(out)
  np.testing.assert_array_equal(out, RGB)


def test_grayscale(tmp_path):
  gray = RGB[..., 0]
  Image.fromarray(gray, "L").save(tmp_path / "g.png")
  out = load_image(tmp_path / "g.png")
  _check(out)
  np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_rgba_drops_alpha(tmp_path):
  rgba = np.concatenate([RGB, RNG.integers(0, 256, (9, 13, 1), dtype=np.uint8)], axis=2)
  Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
  out = load_image(str(tmp_path / "a.png"))
  _check(out)
  np.testing.assert_array_equal(out, RGB)


def test_palette(tmp_path):
  img = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
  img.save(tmp_path / "p.png")
  out = load_image(str(tmp_path / "p.png"))
  _check(out)
  np.testing.assert_array_equal(out, np.asarray(img.convert("RGB")))


def test_16_bit_grayscale_is_scaled(tmp_path):
  values = np.array([[0, 257, 65535], [32896, 1000, 60000]], np.uint16)
  Image.fromarray(values).save(tmp_path / "d16.png")
  assert Image.open(tmp_path / "d16.png").mode.startswith("I")
  out = load_image(str(tmp_path / "d16.png"))
  _check(out, (2, 3))
  np.testing.assert_array_equal(out[..., 0], np.round(values / 257.0).astype(np.uint8))
  assert (out[..., 0] == out[..., 2]).all()


def test_float_image(tmp_path):
  Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F").save(tmp_path / "f.tiff")
  np.testing.assert_array_equal(load_image(str(tmp_path / "f.tiff"))[0, :, 0], [0, 128, 255])


def test_exif_orientation_applied_unless_disabled(tmp_path):
  img = Image.fromarray(RGB)
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
  img.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
  _check(load_image(str(tmp_path / "r.jpg")), (13, 9))
  _check(load_image(str(tmp_path / "r.jpg"), apply_exif=False), (9, 13))


def test_not_an_image(tmp_path):
  path = tmp_path / "weights.png"
  path.write_bytes(b"\x00\x01 this is not a picture")
  with pytest.raises(ImageError, match="weights.png: not an image file"):
    load_image(str(path))
  with pytest.raises(ImageError, match="missing.png: no such image file"):
    load_image(str(tmp_path / "missing.png"))


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_truncated_image(tmp_path, fmt):
  big = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
  path = tmp_path / f"t.{fmt}"
  Image.fromarray(big).save(path, format=fmt)
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(ImageError, match=f"t.{fmt}: cannot decode image"):
    load_image(str(path))


def test_depth_png(tmp_path):
  depth = np.linspace(0, 3, 12 * 7, dtype=np.float32).reshape(12, 7)
  save_depth_png(depth, str(tmp_path / "sub" / "d.png"))
  out = np.asarray(Image.open(tmp_path / "sub" / "d.png"))
  assert out.shape == (12, 7, 3) and out.dtype == np.uint8
  assert not np.array_equal(out[0, 0], out[-1, -1])  # the colour map spans the range
  assert (depth_to_colors(np.ones((4, 4))) == depth_to_colors(np.zeros((4, 4)))).all()  # constant: no NaN
