"""Every argument is checked against its range before any work: one clear line from the CLI, a
ValueError from the API (ois_jax.cli._common's check_* helpers and the Predictor's own checks)."""

import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from cli_errors import one_line  # tests/cli_errors.py
from ois_jax import Predictor, cli
from ois_jax.cli import _common
from ois_jax.configs import ois_tiny
from ois_jax.errors import ConfigError, ImageError
from ois_jax.models import ois

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "ois_tiny.py")


@pytest.fixture
def image(tmp_path):
  path = tmp_path / "i.png"
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path)
  return str(path)


@pytest.fixture
def no_model(monkeypatch):
  """Any model built or weights read fails the test: the check must come first."""
  monkeypatch.setattr(ois, "build_model", lambda *a: pytest.fail("the model was built"))
  from ois_jax import checkpoint, pretrained
  monkeypatch.setattr(checkpoint, "load_weights", lambda *a, **k: pytest.fail("weights were read"))
  monkeypatch.setattr(pretrained, "load", lambda *a, **k: pytest.fail("weights were read"))


@pytest.mark.parametrize("value", [-0.5, 2, float("nan"), "abc"])
def test_check_probability(value):
  with pytest.raises(ConfigError, match=r"must be in \[0, 1\]"):
    _common.check_probability(value, "--threshold")
  for good in (None, 0, 0.49, 1.0):
    _common.check_probability(good, "--threshold")


@pytest.mark.parametrize("value,needle", [(0, "must be >= 1, got 0"), (-3, "must be >= 1, got -3"),
                                          (True, "must be an integer"), (2.5, "must be an integer")])
def test_check_at_least(value, needle):
  with pytest.raises(ConfigError, match=needle):
    _common.check_at_least(value, 1, "--limit")


@pytest.mark.parametrize("size", ["0", "-1", "13"])
def test_depth_input_size_is_refused_before_the_checkpoint_is_read(image, tmp_path, capsys, size):
  # The checkpoint does not exist: the size is refused before anyone looks for it.
  assert cli.main(["depth", image, "--checkpoint", str(tmp_path / "none"), "--input-size", size,
                   "--out", str(tmp_path / "d.npy")]) == 1
  assert f"--input-size {size} is below the 14-pixel patch size" in one_line(capsys)


@pytest.mark.parametrize("source", [["--model", "ois-tiny-procedural"], ["--checkpoint", "somewhere"]])
def test_seed_with_weights_is_refused(image, tmp_path, capsys, no_model, source):
  assert cli.main(["segment", image, *source, "--click", "5,5,+", "--seed", "3",
                   "--out", str(tmp_path / "m.png")]) == 1
  assert f"--seed chooses random weights; it means nothing with {source[0]}" in one_line(capsys)
  assert cli.main(["demo", *source, "--seed", "3"]) == 1
  assert f"it means nothing with {source[0]}" in one_line(capsys)


def test_segment_threshold_nan_is_refused(image, tmp_path, capsys, no_model):
  assert cli.main(["segment", image, "--config", TINY, "--click", "5,5,+", "--threshold", "nan",
                   "--out", str(tmp_path / "m.png")]) == 1
  assert "--threshold must be in [0, 1], got nan" in one_line(capsys)


def test_evaluate_max_clicks_beyond_the_click_slots_is_refused_up_front(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(ois, "build_model", lambda *a: pytest.fail("the model was built"))
  assert cli.main(["evaluate", "--config", TINY, "--dataset", "procedural", "--max-clicks", "60",
                   "--out", str(tmp_path / "e")]) == 1
  assert ("--max-clicks 60: the model has 24 positive and 24 negative click slots, so at most 24 "
          "clicks are sure to reach it") in one_line(capsys)
  assert not (tmp_path / "e").exists()


def test_evaluate_threshold_override_outside_0_1_is_refused(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(ois, "build_model", lambda *a: pytest.fail("the model was built"))
  assert cli.main(["evaluate", "--config", TINY, "--dataset", "procedural", "--config.eval.threshold=1.5",
                   "--out", str(tmp_path / "e")]) == 1
  assert "eval.threshold must be in [0, 1], got 1.5" in one_line(capsys)


def test_train_eval_max_clicks_beyond_the_slots_is_refused(tmp_path, capsys):
  assert cli.main(["train", "--config", TINY, "--workdir", str(tmp_path / "w"),
                   "--config.eval.max_clicks=30"]) == 1
  assert "eval.max_clicks 30: the model has 24 positive" in one_line(capsys)
  assert not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def external_depth_predictor():
  """The tiny model with model.depth_source='external' (zero weights: only the checks run)."""
  config = ois_tiny.get_config()
  config.model.input_size = 56
  config.model.depth_source = "external"
  model = ois.build_model(config.model)
  shapes = jax.eval_shape(lambda k: ois.init_params(model, k), jax.random.key(0))
  params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  return Predictor.from_config(config, params=params)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_external_depth_with_nan_or_inf_is_refused(external_depth_predictor, value):
  depth = np.ones((30, 40), np.float32)
  depth[3, 4] = value
  with pytest.raises(ImageError, match="the depth map has 1 NaN or infinite values"):
    external_depth_predictor.set_image(np.zeros((30, 40, 3), np.uint8), depth=depth)
  assert not external_depth_predictor.is_image_set
  with pytest.raises(ValueError, match="dtype object"):
    external_depth_predictor.set_image(np.zeros((30, 40, 3), np.uint8),
                                       depth=np.full((30, 40), None, dtype=object))
