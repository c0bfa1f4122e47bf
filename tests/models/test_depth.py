"""DepthAnythingV2 pre/post-processing against a direct re-implementation of DAv2's transforms."""

import cv2
import numpy as np
import pytest

from ois_jax.cli import main as cli_main
from ois_jax.errors import ImageError
from ois_jax.models.depth import DepthAnythingV2, DepthConfig, image2tensor, resized_shape


class DAv2Resize:
  """DAv2's util/transform.Resize(keep_aspect_ratio=True, ensure_multiple_of=14,
  resize_method='lower_bound', INTER_CUBIC), transcribed for the test."""

  def __init__(self, size):
    self.size = size

  def constrain(self, x, min_val):
    y = (np.round(x / 14) * 14).astype(int)
    if y < min_val:
      y = (np.ceil(x / 14) * 14).astype(int)
    return y

  def get_size(self, width, height):
    scale_height, scale_width = self.size / height, self.size / width
    if scale_width > scale_height:
      scale_height = scale_width
    else:
      scale_width = scale_height
    return (self.constrain(scale_width * width, self.size), self.constrain(scale_height * height, self.size))

  def __call__(self, image):
    width, height = self.get_size(image.shape[1], image.shape[0])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)


def reference_image2tensor(image_rgb, size):
  x = DAv2Resize(size)(image_rgb / 255.0)
  x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  return np.ascontiguousarray(x).astype(np.float32)[None]


@pytest.mark.parametrize("hw,size", [((518, 525), 518), ((518, 539), 518), ((480, 640), 518), ((640, 480), 518),
                                     ((100, 100), 518), ((1000, 37), 518), ((37, 1000), 70), ((300, 301), 196)])
def test_resized_shape_matches_dav2(hw, size):
  h, w = hw
  ref_w, ref_h = DAv2Resize(size).get_size(w, h)
  assert resized_shape(h, w, size) == (ref_h, ref_w)
  assert min(ref_h, ref_w) >= size and ref_h % 14 == 0 and ref_w % 14 == 0


def test_round_half_to_even_is_kept():
  # 525 / 14 = 37.5 -> 38 (even) -> 532; 539 / 14 = 38.5 -> 38 -> 532. round-half-up would give 546.
  assert resized_shape(518, 525) == (518, 532)
  assert resized_shape(518, 539) == (518, 532)


@pytest.mark.parametrize("hw,size", [((61, 90), 70), ((90, 61), 70), ((37, 200), 98)])
def test_image2tensor_matches_dav2(hw, size):
  image = np.random.default_rng(sum(hw)).integers(0, 256, (*hw, 3), dtype=np.uint8)
  x, orig = image2tensor(image, size)
  ref = reference_image2tensor(image, size)
  assert orig == hw and x.dtype == np.float32
  assert x.shape == ref.shape
  np.testing.assert_array_equal(x, ref)


def test_image2tensor_rejects_non_images():
  with pytest.raises(ImageError, match="uint8 RGB"):
    image2tensor(np.zeros((10, 10, 3), np.float32))
  with pytest.raises(ImageError, match="uint8 RGB"):
    image2tensor(np.zeros((10, 10), np.uint8))


@pytest.fixture(scope="module")
def vits():
  model = DepthAnythingV2("vits")
  return model, model.random_params(seed=0)


def test_infer_image_postprocessing_matches_torch(vits):
  torch = pytest.importorskip("torch")
  model, params = vits
  image = np.random.default_rng(1).integers(0, 256, (45, 67, 3), dtype=np.uint8)
  depth = model.infer_image(params, image, input_size=56)
  assert depth.shape == (45, 67) and depth.dtype == np.float32
  x, _ = image2tensor(image, 56)
  net = np.array(model.forward(params, x))  # (1, h', w')
  assert net.shape == (1, 56, 84) and (net >= 0).all() and net.max() > 0
  ref = torch.nn.functional.interpolate(torch.from_numpy(net)[:, None], (45, 67), mode="bilinear",
                                        align_corners=True)[0, 0].numpy()
  np.testing.assert_allclose(depth, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_depth_config_round_trip():
  config = DepthConfig("vitb", "hf", 700)
  assert DepthConfig.from_dict(config.to_dict()) == config
  assert config.to_dict()["model"] == "depth_anything_v2"


def test_depth_cli_writes_npy_and_png(vits, tmp_path, capsys):
  from PIL import Image
  from ois_jax import checkpoint
  model, params = vits
  ckpt = str(tmp_path / "ckpt")
  checkpoint.save_checkpoint(ckpt, params, DepthConfig("vits", input_size=56))
  # Same network input shape (56, 84) as the test above: the compiled executable is reused.
  image = np.random.default_rng(2).integers(0, 256, (30, 45, 3), dtype=np.uint8)
  Image.fromarray(image).save(tmp_path / "in.png")
  out, png = str(tmp_path / "d.npy"), str(tmp_path / "d.png")
  args = ["depth", str(tmp_path / "in.png"), "--checkpoint", ckpt, "--out", out, "--png", png]
  assert cli_main(args) == 0
  depth = np.load(out)
  assert depth.dtype == np.float32 and depth.shape == (30, 45)
  np.testing.assert_array_equal(depth, model.infer_image(params, image, 56))
  assert np.asarray(Image.open(png)).shape == (30, 45, 3)
  # Existing outputs are refused unless --overwrite.
  assert cli_main(args) == 1
  assert "already exists" in capsys.readouterr().err
  assert cli_main(args + ["--overwrite"]) == 0
  # A file that is not an image is named in the error.
  (tmp_path / "notes.jpg").write_text("hello")
  assert cli_main(["depth", str(tmp_path / "notes.jpg"), "--checkpoint", ckpt, "--out",
                   str(tmp_path / "e.npy")]) == 1
  assert "notes.jpg: not an image file" in capsys.readouterr().err


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("shapes", [((19, 28), (37, 52)), ((296, 296), (518, 518)), ((7, 5), (3, 9)), ((1, 4), (3, 4))])
def test_bilinear_resize_matches_torch(shapes, align_corners):
  """The 2-tap resize used by the DPT head and infer_image, against F.interpolate (fp32)."""
  torch = pytest.importorskip("torch")
  from ois_jax import geometry as resize
  (h, w), size = shapes
  x = np.random.default_rng(h * w).standard_normal((1, h, w, 2)).astype(np.float32)
  fn = resize.resize_bilinear_align_corners if align_corners else resize.resize_bilinear
  ours = np.asarray(fn(x, size))
  ref = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), size,
                                        mode="bilinear", align_corners=align_corners)
  np.testing.assert_allclose(ours, ref.numpy().transpose(0, 2, 3, 1), rtol=0, atol=2e-6)
