"""Bad input gets one clear line (commands) or a ValueError subclass (Python API), never a traceback
from deep inside JAX or orbax, and nothing the user has is overwritten silently."""

import os
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from cli_errors import one_line  # tests/cli_errors.py
from ois_jax import Predictor, cli
from ois_jax.checkpoint import save_checkpoint
from ois_jax.configs import ois_tiny
from ois_jax.models import ois

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "ois_tiny.py")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
  """A saved tiny OIS model (random weights) and an image."""
  root = tmp_path_factory.mktemp("bad_input")
  config = ois_tiny.get_config()
  model = ois.build_model(config.model)
  params = jax.device_get(ois.init_params(model, jax.random.key(0)))
  ckpt = save_checkpoint(str(root / "ckpt"), params, config.to_dict())
  image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
  Image.fromarray(image).save(root / "image.png")
  return {"root": root, "ckpt": ckpt, "image": str(root / "image.png"), "params": params,
          "config": config}


# --- segment ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,needle", [
    (["--config.nosec.key=1"], "no such config key nosec.key"),
    (["--config.eval.treshold=0.5"], "did you mean eval.threshold"),
    (["--config.model.input_size=abc"], "model.input_size must be of type int"),
])
def test_segment_bad_overrides(tiny_checkpoint, tmp_path, capsys, overrides, needle):
  argv = ["segment", tiny_checkpoint["image"], "--config", TINY, "--click", "5,5,+", *overrides,
          "--out", str(tmp_path / "m.png")]
  assert cli.main(argv) == 1
  assert needle in one_line(capsys)


@pytest.mark.parametrize("click,needle", [("5,900,+", "outside the 30x40 image"),
                                          ("5,x,+", "y and x must be numbers"),
                                          ("5,5,?", "expected y,x,+ or y,x,-")])
def test_segment_bad_clicks_are_found_before_the_model_is_built(tiny_checkpoint, tmp_path, capsys,
                                                                monkeypatch, click, needle):
  monkeypatch.setattr(ois, "build_model", lambda *a: pytest.fail("the model was built"))
  argv = ["segment", tiny_checkpoint["image"], "--checkpoint", tiny_checkpoint["ckpt"],
          "--click", click, "--out", str(tmp_path / "m.png")]
  assert cli.main(argv) == 1
  assert needle in one_line(capsys)


@pytest.mark.parametrize("threshold", ["-0.5", "2", "nan"])
def test_segment_threshold_outside_0_1_is_refused_before_the_model_is_built(
    tiny_checkpoint, tmp_path, capsys, monkeypatch, threshold):
  monkeypatch.setattr(ois, "build_model", lambda *a: pytest.fail("the model was built"))
  argv = ["segment", tiny_checkpoint["image"], "--checkpoint", tiny_checkpoint["ckpt"],
          "--click", "5,5,+", "--threshold", threshold, "--out", str(tmp_path / "m.png")]
  assert cli.main(argv) == 1
  assert f"--threshold must be in [0, 1], got {float(threshold)}" in one_line(capsys)
  assert not (tmp_path / "m.png").exists()


def test_segment_refuses_a_seed_with_weights(tiny_checkpoint, tmp_path, capsys):
  argv = ["segment", tiny_checkpoint["image"], "--checkpoint", tiny_checkpoint["ckpt"],
          "--click", "5,5,+", "--seed", "3", "--out", str(tmp_path / "m.png")]
  assert cli.main(argv) == 1
  assert "--seed chooses random weights" in one_line(capsys)


@pytest.mark.parametrize("out,needle", [("folder", "is a folder"), ("mask.xyz", "unknown file type")])
def test_segment_bad_outputs(tiny_checkpoint, tmp_path, capsys, out, needle):
  (tmp_path / "folder").mkdir()
  argv = ["segment", tiny_checkpoint["image"], "--config", TINY, "--click", "5,5,+",
          "--out", str(tmp_path / out)]
  assert cli.main(argv) == 1
  assert needle in one_line(capsys)


def test_segment_outputs_are_not_overwritten_and_prob_out_folder_is_created(tiny_checkpoint, tmp_path, capsys):
  mask = tmp_path / "mask.png"
  mask.write_bytes(b"user's file")
  argv = ["segment", tiny_checkpoint["image"], "--checkpoint", tiny_checkpoint["ckpt"],
          "--click", "5,5,+", "--out", str(mask), "--prob-out", str(tmp_path / "new" / "p.npy")]
  assert cli.main(argv) == 1
  assert "already exists; pass --overwrite" in one_line(capsys)
  assert mask.read_bytes() == b"user's file"
  assert cli.main(argv + ["--overwrite"]) == 0
  assert (tmp_path / "new" / "p.npy").exists() and mask.read_bytes() != b"user's file"


def test_segment_set_applies_to_a_checkpoint_but_cannot_change_its_model(tiny_checkpoint, tmp_path, capsys):
  base = ["segment", tiny_checkpoint["image"], "--checkpoint", tiny_checkpoint["ckpt"], "--click", "5,5,+"]
  assert cli.main(base + ["--out", str(tmp_path / "a.png"), "--prob-out", str(tmp_path / "p.npy")]) == 0
  prob = np.load(tmp_path / "p.npy")
  threshold = float(np.median(prob))
  assert cli.main(base + ["--out", str(tmp_path / "b.png"), f"--config.eval.threshold={threshold}"]) == 0
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")) > 0, prob > threshold)
  capsys.readouterr()
  assert cli.main(base + ["--out", str(tmp_path / "c.png"), "--config.model.use_order=False"]) == 1
  assert "cannot change the model" in one_line(capsys) and not (tmp_path / "c.png").exists()


@pytest.fixture(scope="module")
def misfit_checkpoint(tiny_checkpoint):
  """Params of the tiny model saved with a config that builds another model (prompt_dim 64)."""
  config = ois_tiny.get_config()
  config.model.prompt_dim = 64
  return save_checkpoint(str(tiny_checkpoint["root"] / "misfit"), tiny_checkpoint["params"],
                         config.to_dict())


def test_params_that_do_not_fit_their_config(tiny_checkpoint, misfit_checkpoint, tmp_path, capsys):
  assert cli.main(["segment", tiny_checkpoint["image"], "--checkpoint", misfit_checkpoint,
                   "--click", "5,5,+", "--out", str(tmp_path / "m.png")]) == 1
  assert "do not fit this model config" in one_line(capsys)
  assert cli.main(["evaluate", "--checkpoint", misfit_checkpoint, "--dataset", "procedural",
                   "--out", str(tmp_path / "e")]) == 1
  assert "do not fit this model config" in one_line(capsys)


# --- evaluate, compare -----------------------------------------------------------------------------
@pytest.mark.parametrize("extra,needle", [
    (["--limit", "-1"], "--limit must be >= 1"), (["--max-clicks", "0"], "--max-clicks must be >= 1"),
    (["--dataset", "imagenet"], "unknown; choose one of"),
    (["--dataset", "grabcut"], "needs --data-dir"),
])
def test_evaluate_bad_arguments(tmp_path, capsys, extra, needle):
  argv = ["evaluate", "--config", TINY, "--out", str(tmp_path / "e")]
  argv += extra if "--dataset" in extra else ["--dataset", "procedural", *extra]
  assert cli.main(argv) == 1
  assert needle in one_line(capsys)


def test_compare_refuses_a_file_and_an_existing_comparison(tmp_path, capsys):
  import json
  record = {"mIoU@1": 0.5, "mIoU@2": 0.6, "max_clicks": 2, "dataset": "x"}
  (tmp_path / "metrics.json").write_text(json.dumps(record))
  (tmp_path / "a_file").write_text("mine")
  assert cli.main(["compare", str(tmp_path / "metrics.json"), "--out", str(tmp_path / "a_file")]) == 1
  assert "is a file" in one_line(capsys)
  assert cli.main(["compare", str(tmp_path / "metrics.json"), "--out", str(tmp_path / "cmp")]) == 0
  capsys.readouterr()
  assert cli.main(["compare", str(tmp_path / "metrics.json"), "--out", str(tmp_path / "cmp")]) == 1
  assert "pass --overwrite" in one_line(capsys)
  assert cli.main(["compare", str(tmp_path / "metrics.json"), "--out", str(tmp_path / "cmp"),
                   "--overwrite"]) == 0


# --- depth -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dav2_checkpoint(tmp_path_factory):
  from ois_jax.models.depth import DepthAnythingV2, DepthConfig
  root = tmp_path_factory.mktemp("dav2")
  return save_checkpoint(str(root / "vits"), DepthAnythingV2("vits").random_params(0), DepthConfig())


def test_depth_bit_flipped_params_is_one_line(dav2_checkpoint, tmp_path, capsys):
  import shutil
  damaged = tmp_path / "damaged"
  shutil.copytree(dav2_checkpoint, damaged)
  files = [os.path.join(r, f) for r, _, fs in os.walk(damaged / "params") for f in fs]
  biggest = max(files, key=os.path.getsize)
  data = bytearray(open(biggest, "rb").read())
  for i in range(0, len(data), 101):
    data[i] ^= 0xFF
  open(biggest, "wb").write(bytes(data))
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "i.png")
  assert cli.main(["depth", str(tmp_path / "i.png"), "--checkpoint", str(damaged),
                   "--out", str(tmp_path / "d.npy")]) == 1
  assert "corrupt or truncated" in one_line(capsys)


@pytest.mark.parametrize("size", ["0", "-14", "13"])
def test_depth_input_size_below_a_patch_is_refused_not_replaced(dav2_checkpoint, tmp_path, capsys, size):
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "img.png")
  assert cli.main(["depth", str(tmp_path / "img.png"), "--checkpoint", dav2_checkpoint,
                   "--input-size", size, "--out", str(tmp_path / "d.npy")]) == 1
  assert f"--input-size {size} is below the 14-pixel patch size" in one_line(capsys)
  assert not (tmp_path / "d.npy").exists()


def test_depth_extreme_aspect_ratio_is_refused(dav2_checkpoint, tmp_path, capsys):
  Image.fromarray(np.zeros((30, 10000, 3), np.uint8)).save(tmp_path / "strip.png")
  assert cli.main(["depth", str(tmp_path / "strip.png"), "--checkpoint", dav2_checkpoint,
                   "--out", str(tmp_path / "d.npy")]) == 1
  err = one_line(capsys)
  assert "10000x30" in err and "limited to 4144 px" in err


# --- the Predictor ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor(tiny_checkpoint):
  p = Predictor.from_checkpoint(tiny_checkpoint["ckpt"])
  p.set_image(np.asarray(Image.open(tiny_checkpoint["image"])))
  return p


@pytest.mark.parametrize("clicks,prev,needle", [
    ([(5, 5, "False")], None, "label 'False'"),
    ([(5, 5, None)], None, "label None"),
    ([(5, 5, 2)], None, "label 2"),
    ([(float("nan"), 5, True)], None, "outside"),
    ([(5, 5, True)], "nan", "NaN or infinite"),
    ([(5, 5, True)], "inf", "NaN or infinite"),
    ([(5, 5, True)], "none_objects", "dtype object"),
    ([(5, 5, True)], "out_of_range", "expected probabilities in [0, 1]"),
])
def test_predictor_refuses_what_would_silently_go_wrong(predictor, clicks, prev, needle):
  prev_mask = None
  if prev == "nan":
    prev_mask = np.zeros((30, 40), np.float32)
    prev_mask[3, 4] = np.nan
  elif prev == "inf":
    prev_mask = np.zeros((30, 40), np.float32)
    prev_mask[3, 4] = np.inf
  elif prev == "none_objects":
    prev_mask = np.full((30, 40), None, dtype=object)
  elif prev == "out_of_range":
    prev_mask = np.full((30, 40), 3.0, np.float32)
  with pytest.raises(ValueError) as info:
    predictor.predict(clicks, prev_mask=prev_mask)
  assert needle in str(info.value)


def test_predictor_labels_that_are_real_booleans_work(predictor):
  a = predictor.predict([(5, 5, True), (20, 30, False)])
  b = predictor.predict([(5, 5, np.bool_(True)), (20, 30, 0)])
  np.testing.assert_array_equal(a, b)


def test_predictor_from_config_refuses_params_of_another_model(tiny_checkpoint):
  config = ois_tiny.get_config()
  config.model.prompt_dim = 64
  with pytest.raises(Exception, match="do not fit this model config"):
    Predictor.from_config(config, params=tiny_checkpoint["params"])


def test_one_image_decoder_for_datasets_and_inference(tmp_path):
  """The dataset builders, the training pipeline and load_image decode a file to the same pixels
  (16-bit and EXIF-rotated files included)."""
  from ois_jax.data_pipelines import imaging, training
  from ois_jax.io import load_image
  values = (np.arange(30 * 40, dtype=np.uint16).reshape(30, 40) * 50)
  Image.fromarray(values).save(tmp_path / "deep.png")
  rgb = np.random.default_rng(1).integers(0, 256, (9, 13, 3), dtype=np.uint8)
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
  for name in ("deep.png", "rot.jpg"):
    path = str(tmp_path / name)
    data = open(path, "rb").read()
    reference = load_image(path)
    np.testing.assert_array_equal(imaging.decode_image_bytes(data), reference)
    np.testing.assert_array_equal(training.decode_image(data), reference)
    np.testing.assert_array_equal(training.decode_image(path), reference)
