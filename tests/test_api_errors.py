"""The Python API raises only ValueError- or OSError-family errors for bad arguments and missing
files (ois_jax.errors): a walk over the public functions with the arguments a caller gets wrong."""

import jax
import numpy as np
import pytest

from ois_jax import Predictor, checkpoint, config as config_lib, errors, io, pretrained
from ois_jax.configs import ois_tiny
from ois_jax.models import ois


def test_every_error_class_is_in_a_family():
  for name in ("CheckpointError", "ImageError", "ClickError", "ConfigError", "DataError",
               "DistributedError", "ExportError"):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.OISError) and issubclass(cls, (ValueError, OSError)), name
  for name in ("CheckpointError", "DataError", "ExportError"):  # about files and folders
    assert issubclass(getattr(errors, name), OSError), name
  assert str(errors.CheckpointError("one line")) == "one line"  # OSError keeps a one-argument message


@pytest.fixture(scope="module")
def config():
  config = ois_tiny.get_config()
  config.model.input_size = 56
  return config


@pytest.fixture(scope="module")
def params(config):
  """Zero weights of the right shapes (no compile: only the argument checks run)."""
  model = ois.build_model(config.model)
  shapes = jax.eval_shape(lambda k: ois.init_params(model, k), jax.random.key(0))
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


@pytest.fixture(scope="module")
def predictor(config, params):
  return Predictor.from_config(config, params=params)


@pytest.fixture(scope="module")
def with_image(config, params):
  p = Predictor.from_config(config, params=params)
  p.set_image(np.zeros((30, 40, 3), np.uint8))
  return p


CASES = {
    "load_image(None)": lambda f: io.load_image(None),
    "load_image(3)": lambda f: io.load_image(3),
    "load_image(missing)": lambda f: io.load_image("/no/such/image.png"),
    "Predictor.from_checkpoint(None)": lambda f: Predictor.from_checkpoint(None),
    "Predictor.from_checkpoint(missing)": lambda f: Predictor.from_checkpoint("/no/such/ckpt"),
    "Predictor.from_checkpoint(a file)": lambda f: Predictor.from_checkpoint(__file__),
    "Predictor.from_pretrained(unknown)": lambda f: Predictor.from_pretrained("no-such-model"),
    "Predictor.from_pretrained(None)": lambda f: Predictor.from_pretrained(None),
    "Predictor.from_config(None)": lambda f: Predictor.from_config(None),
    "Predictor.from_config(params a string)": lambda f: Predictor.from_config(f("config"), params="abc"),
    "predict before set_image": lambda f: f("predictor").predict([(1, 1, True)]),
    "set_image(None)": lambda f: f("predictor").set_image(None),
    "set_image(a path)": lambda f: f("predictor").set_image("image.png"),
    "set_image(float image)": lambda f: f("predictor").set_image(np.zeros((4, 4, 3), np.float32)),
    "predict(clicks=None)": lambda f: f("with_image").predict(None),
    "predict(clicks=3)": lambda f: f("with_image").predict(3),
    "predict(clicks='5,5,+')": lambda f: f("with_image").predict("5,5,+"),
    "predict([None])": lambda f: f("with_image").predict([None]),
    "predict(prev_mask a string)": lambda f: f("with_image").predict([(1, 1, True)], prev_mask="abc"),
    "model_clicks(None)": lambda f: f("with_image").model_clicks(None),
    "load_config(None)": lambda f: config_lib.load_config(None),
    "load_config(3)": lambda f: config_lib.load_config(3),
    "load_config(missing)": lambda f: config_lib.load_config("/no/such/config.py"),
    "load_config(overrides=[3])": lambda f: config_lib.load_config("ois_tiny", [3]),
    "load_config(overrides='a=1')": lambda f: config_lib.load_config("ois_tiny", "a=1"),
    "save_checkpoint(config=3)": lambda f: checkpoint.save_checkpoint(str(f("tmp_path") / "c"), {}, 3),
    "save_checkpoint(None, ...)": lambda f: checkpoint.save_checkpoint(None, {}, {}),
    "load_weights(None)": lambda f: checkpoint.load_weights(None),
    "load_checkpoint(missing)": lambda f: checkpoint.load_checkpoint("/no/such/ckpt"),
    "pretrained.load(3)": lambda f: pretrained.load(3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_arguments_raise_value_or_os_errors(name, request):
  with pytest.raises((ValueError, OSError)) as info:
    CASES[name](request.getfixturevalue)
  assert isinstance(info.value, errors.OISError), f"{name}: {type(info.value).__name__}: {info.value}"
  assert "\n" not in str(info.value).strip()
