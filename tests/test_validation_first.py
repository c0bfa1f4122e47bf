"""What can be checked before any work is checked first, in one line: a --config that is not a
config, checkpoint metadata that was edited (a string for a number, a variant the weights are not
of), and `compare` reads the quickstart's own metrics.json."""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from cli_errors import one_line  # tests/cli_errors.py
from ois_jax import Predictor, cli, config as config_lib
from ois_jax.checkpoint import METADATA_FILE, save_checkpoint
from ois_jax.errors import CheckpointError, ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def image(tmp_path):
  path = tmp_path / "i.png"
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path)
  return str(path)


def test_config_that_is_a_png_is_one_line(image, tmp_path, capsys):
  with pytest.raises(ConfigError, match="not a Python config file"):
    config_lib.load_config(image)
  assert cli.main(["train", "--config", image, "--workdir", str(tmp_path / "w")]) == 1
  assert "not a Python config file" in one_line(capsys)
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("body,needle", [
    ("def get_config():\n  return None\n", "get_config() returned NoneType, not a ConfigDict"),
    ("def get_config():\n  return 3\n", "get_config() returned int"),
    ("from ois_jax.configs import ois_tiny\ndef get_config():\n  c = ois_tiny.get_config()\n"
     "  c.unlock()\n  del c.model['input_size']\n  c.model.input_size = 'abc'\n  return c\n",
     "model.input_size: 'abc' where the schema has a int"),
    ("\x89PNG\x00garbage", "cannot load"),
])
def test_config_file_that_returns_no_config_is_one_line(tmp_path, capsys, body, needle):
  path = tmp_path / "bad.py"
  path.write_text(body)
  assert cli.main(["train", "--config", str(path), "--workdir", str(tmp_path / "w")]) == 1
  assert needle in one_line(capsys)
  assert not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
  """Zero weights of the tiny model (shapes only matter here), saved as an export."""
  import jax

  from ois_jax.configs import ois_tiny
  from ois_jax.models import ois
  config = ois_tiny.get_config()
  config.model.input_size = 56
  model = ois.build_model(config.model)
  shapes = jax.eval_shape(lambda k: ois.init_params(model, k), jax.random.key(0))
  params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  return save_checkpoint(str(tmp_path_factory.mktemp("export") / "ckpt"), params, config.to_dict())


def edited(export: str, tmp_path, edit) -> str:
  copy = str(tmp_path / "edited")
  shutil.copytree(export, copy)
  path = os.path.join(copy, METADATA_FILE)
  record = json.load(open(path))
  edit(record["config"])
  json.dump(record, open(path, "w"))
  return copy


@pytest.mark.parametrize("edit,needle", [
    (lambda c: c["model"].update(input_size="abc"), "model.input_size: 'abc' where the schema has a int"),
    (lambda c: c["model"].update(use_order="yes"), "model.use_order: 'yes' where the schema has a bool"),
    (lambda c: c["model"].update(encoder_embed_dim=768), "do not fit this model config"),
])
def test_edited_checkpoint_metadata_is_one_line(tiny_export, tmp_path, image, capsys, edit, needle):
  path = edited(tiny_export, tmp_path, edit)
  with pytest.raises(CheckpointError, match=needle.replace("(", r"\(")):
    Predictor.from_checkpoint(path)
  assert cli.main(["segment", image, "--checkpoint", path, "--click", "5,5,+",
                   "--out", str(tmp_path / "m.png")]) == 1
  assert needle in one_line(capsys)


@pytest.fixture(scope="module")
def dav2_export(tmp_path_factory):
  from ois_jax.models.depth import DepthAnythingV2, DepthConfig
  root = tmp_path_factory.mktemp("dav2")
  return save_checkpoint(str(root / "vits"), DepthAnythingV2("vits").random_params(0), DepthConfig())


@pytest.mark.parametrize("edit,needle", [
    (lambda c: c.update(variant="vitb"), "the weights do not fit the vitb model its metadata describes"),
    (lambda c: c.update(variant="vitx"), "does not describe a depth_anything_v2 model"),
    (lambda c: c.update(input_size="abc"), "does not describe a depth_anything_v2 model"),
])
def test_edited_depth_metadata_is_one_line(dav2_export, tmp_path, image, capsys, edit, needle):
  path = edited(dav2_export, tmp_path, edit)
  assert cli.main(["depth", image, "--checkpoint", path, "--out", str(tmp_path / "d.npy")]) == 1
  assert needle in one_line(capsys)


def test_compare_reads_the_quickstart_metrics(tmp_path, capsys):
  metrics = {f"mIoU@{k}": 0.1 * k for k in range(1, 4)}
  record = {"metrics": {"OIS (init)": dict(metrics, NoC90=3.0), "OIS": dict(metrics, NoC90=2.0)},
            "seconds": {"total": 1.0}, "settings": {}}
  run = tmp_path / "quickstart"
  run.mkdir()
  (run / "metrics.json").write_text(json.dumps(record))
  assert cli.main(["compare", str(run / "metrics.json"), str(run), "--out", str(tmp_path / "cmp")]) == 0
  table = (tmp_path / "cmp" / "compare.txt").read_text()
  assert "OIS (init) [quickstart]" in table and "OIS [quickstart]" in table
  (tmp_path / "other.json").write_text(json.dumps({"metrics": {"x": 1}}))
  capsys.readouterr()
  assert cli.main(["compare", str(tmp_path / "other.json"), "--out", str(tmp_path / "cmp2")]) == 1
  assert "not an ois-jax metrics.json" in one_line(capsys)
