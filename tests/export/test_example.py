"""examples/onnx_segment.py: the mask of `ois-jax segment`, from a Python without JAX or ois-jax."""

import itertools

import cv2
import numpy as np
import pytest
from PIL import Image

import export_testlib as L


def test_resize_is_opencv_inter_linear_bit_for_bit():
  example = L.load_example()
  rng = np.random.default_rng(0)
  sizes = [(321, 481), (481, 321), (224, 224), (1, 7), (7, 1), (2, 2), (97, 13), (600, 450)]
  targets = [112, 518, 56, 3]
  for (h, w), size in itertools.product(sizes, targets):
    scale = size / max(h, w)
    oh, ow = min(size, max(1, round(h * scale))), min(size, max(1, round(w * scale)))
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    expected = cv2.resize(image, (ow, oh), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(example.resize_linear_uint8(image, oh, ow), expected,
                                  err_msg=f"{h}x{w} -> {oh}x{ow}")


def _clicks_argv():
  return [a for y, x, p in L.scene_clicks() for a in ("--click", f"{y:g},{x:g},{'+' if p else '-'}")]


def test_example_mask_equals_ois_jax_segment(onnx_export, tiny_checkpoint, scene_image, no_jax_python,
                                             tmp_path):
  import subprocess

  from ois_jax.cli import main
  onnx_mask, onnx_prob = tmp_path / "onnx.png", tmp_path / "onnx.npy"
  result = subprocess.run(no_jax_python + [L.EXAMPLE, onnx_export, scene_image, *_clicks_argv(),
                                           "--out", str(onnx_mask), "--prob-out", str(onnx_prob)],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  jax_mask, jax_prob = tmp_path / "jax.png", tmp_path / "jax.npy"
  assert main(["segment", scene_image, "--checkpoint", tiny_checkpoint, *_clicks_argv(),
               "--out", str(jax_mask), "--prob-out", str(jax_prob)]) == 0
  a, b = np.asarray(Image.open(onnx_mask)), np.asarray(Image.open(jax_mask))
  assert a.shape == b.shape == (321, 481) and a.dtype == b.dtype == np.uint8
  prob_onnx, prob_jax = np.load(onnx_prob), np.load(jax_prob)
  assert np.max(np.abs(prob_onnx - prob_jax)) <= 1e-5
  # Equal masks; a pixel may only differ where float32 rounding puts JAX's probability within
  # 1e-5 of the threshold (none on this scene so far).
  differ = a != b
  assert not np.any(differ & (np.abs(prob_jax - 0.49) > 1e-5))
  assert differ.sum() <= 2, differ.sum()
  assert 0 < (a > 0).sum() < a.size  # a real mask, not all or nothing


@pytest.mark.parametrize("clicks, message", [
    ([(1, i, True) for i in range(25)], "25 positive clicks; the model has 24 positive slots"),
    ([(1, 1, True)] + [(2, i, False) for i in range(25)], "25 negative clicks; the model has 24 negative slots"),
    ([(400, 1, True)], "outside the 321x481 image"),
])
def test_example_rejects_bad_clicks(onnx_export, scene_image, tmp_path, capsys, clicks, message):
  example = L.load_example()
  argv = [onnx_export, scene_image, "--out", str(tmp_path / "m.png")]
  for y, x, p in clicks:
    argv += ["--click", f"{y},{x},{'+' if p else '-'}"]
  assert example.main(argv) == 1
  err = capsys.readouterr().err
  assert message in err and len(err.strip().splitlines()) == 1
  assert not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("threshold", ["-0.5", "2", "nan"])
def test_example_refuses_a_threshold_outside_0_1(onnx_export, scene_image, tmp_path, capsys, threshold):
  example = L.load_example()
  argv = [onnx_export, scene_image, "--click", "1,1,+", "--threshold", threshold,
          "--out", str(tmp_path / "m.png")]
  assert example.main(argv) == 1
  err = capsys.readouterr().err
  assert f"--threshold must be in [0, 1], got {float(threshold)}" in err
  assert len(err.strip().splitlines()) == 1 and not (tmp_path / "m.png").exists()


def _edited_export(onnx_export, tmp_path, edit):
  """A copy of the export whose manifest.json text is edit(manifest dict) (or the raw text)."""
  import json
  import shutil
  copy = tmp_path / "export"
  shutil.copytree(onnx_export, copy)
  manifest = json.loads((copy / "manifest.json").read_text())
  edited = edit(manifest)
  (copy / "manifest.json").write_text(edited if isinstance(edited, str) else json.dumps(edited))
  return str(copy)


def _drop(section, key):
  def edit(m):
    del m[section][key]
    return m
  return edit


def _set(section, key, value):
  def edit(m):
    m[section][key] = value
    return m
  return edit


@pytest.mark.parametrize("edit, message", [
    (lambda m: "{not json", "not readable JSON"),
    (lambda m: [1, 2], "not the manifest of an ONNX export"),
    (lambda m: {k: v for k, v in m.items() if k != "postprocessing"}, "lacks postprocessing.threshold"),
    (_drop("preprocessing", "input_size"), "lacks preprocessing.input_size"),
    (_drop("clicks", "num_negative"), "lacks clicks.num_negative"),
    (lambda m: _set("preprocessing", "input_size", m["preprocessing"]["input_size"] + 14)(m),
     "is not the encoder's input"),
    (_set("clicks", "num_positive", 3), "click slots"),
])
def test_example_refuses_a_manifest_that_disagrees(onnx_export, scene_image, tmp_path, capsys, edit, message):
  example = L.load_example()
  export = _edited_export(onnx_export, tmp_path, edit)
  argv = [export, scene_image, "--click", "1,1,+", "--out", str(tmp_path / "m.png")]
  assert example.main(argv) == 1
  err = capsys.readouterr().err
  assert message in err and len(err.strip().splitlines()) == 1, err
  assert not (tmp_path / "m.png").exists()


def test_example_reads_16_bit_png_as_ois_jax_does(tmp_path):
  from ois_jax import io
  example = L.load_example()
  gray = (np.arange(30 * 40, dtype=np.uint32).reshape(30, 40) * 54).astype(np.uint16)  # up to 64746
  path = tmp_path / "g16.png"
  Image.fromarray(gray).save(path)
  assert Image.open(path).mode.startswith("I")
  pixels = example.load_image(str(path))
  np.testing.assert_array_equal(pixels, io.load_image(str(path)))
  assert pixels.max() > 200 and pixels.min() == 0 and len(np.unique(pixels)) > 100  # not clipped white


def test_example_refuses_a_decompression_bomb_header(onnx_export, tmp_path, capsys):
  import struct
  import zlib
  # A valid PNG header claiming 100000 x 100000 pixels (10 gigapixels): refused before decoding.
  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  bomb = tmp_path / "bomb.png"
  bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                   + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
  example = L.load_example()
  assert example.main([onnx_export, str(bomb), "--click", "1,1,+", "--out", str(tmp_path / "m.png")]) == 1
  err = capsys.readouterr().err
  assert "too many pixels" in err and len(err.strip().splitlines()) == 1, err
