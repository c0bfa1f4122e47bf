"""One config loader for every command and script: paths, `file.py:arg`, module names, overrides;
unknown keys are errors naming the closest key; the config packages live under ois_jax."""

import os
import pathlib
import subprocess
import sys

import pytest

from ois_jax import cli
from ois_jax.config import load_config
from ois_jax.errors import ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "ois_tiny.py")
TYPO = "model.use_odrer=False"
HINT = "did you mean model.use_order?"


def test_every_spelling_of_a_config_loads_the_same():
  by_path = load_config(TINY)
  assert load_config("ois_tiny").to_dict() == by_path.to_dict()
  assert load_config("ois_jax.configs.ois_tiny").to_dict() == by_path.to_dict()
  ablation = load_config(str(REPO / "configs" / "ois_ablation.py") + ":order_first,tiny")
  assert ablation.model.block_order == "order_first" and ablation.model.input_size == 112
  assert load_config(TINY, ["model.input_size=56", "data.procedural_size=(48,64)"]).model.input_size == 56


def test_misspelled_key_in_a_config_file(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("from ois_jax.configs import ois_tiny\n\n"
                 "def get_config():\n  c = ois_tiny.get_config()\n  c.model.use_odrer = False\n  return c\n")
  with pytest.raises(ConfigError, match=HINT.replace("?", r"\?")):
    load_config(str(bad))


def one_line(capsys) -> str:
  err = capsys.readouterr().err.strip()
  assert "Traceback" not in err and len(err.splitlines()) == 1, err
  return err


@pytest.mark.parametrize("argv", [
    ["train", "--config", TINY, "--workdir", "WORKDIR", f"--config.{TYPO}"],
    ["train", "--config", TINY, "--workdir", "WORKDIR", "--config." + TYPO.split("=")[0], "False"],
    ["evaluate", "--config", TINY, "--dataset", "procedural", "--config." + TYPO, "--out", "WORKDIR"],
    ["segment", "IMAGE", "--config", TINY, "--click", "1,1,+", "--config." + TYPO, "--out", "WORKDIR/m.png"],
])
def test_misspelled_key_on_each_command(argv, tmp_path, capsys):
  import numpy as np
  from PIL import Image
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "i.png")
  argv = [a.replace("WORKDIR", str(tmp_path / "w")).replace("IMAGE", str(tmp_path / "i.png")) for a in argv]
  assert cli.main(argv) == 1
  assert HINT in one_line(capsys)


def test_misspelled_key_in_a_script():
  result = subprocess.run([sys.executable, str(REPO / "scripts" / "param_count.py"), "--config", TINY,
                           "--config." + TYPO], capture_output=True, text=True, cwd=REPO)
  assert result.returncode != 0 and HINT in result.stderr and "Traceback" not in result.stderr


def test_config_packages_install_under_the_ois_jax_namespace(tmp_path):
  """`import configs` (a name many projects use) is not installed; ois_jax.configs is."""
  run = lambda code: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    cwd=tmp_path, env=dict(os.environ, PYTHONPATH=""))
  for generic in ("configs", "data_pipelines"):
    result = run(f"import {generic}")
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, result.stderr
  result = run("import ois_jax.configs.ois_tiny, ois_jax.data_pipelines.procedural; print('ok')")
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr
  # And the README's spelling still works from the repository root.
  result = subprocess.run([sys.executable, "-m", "ois_jax", "train", "--config", "configs/ois_tiny.py",
                           "--workdir", str(tmp_path / "w"), "--config.data.batch_size=0"],
                          capture_output=True, text=True, cwd=REPO)
  assert "data.batch_size must be a positive integer" in result.stderr  # loaded, then checked


def test_stage1_config_is_checked_against_its_own_schema():
  from ois_jax import config as config_lib
  depth = config_lib.load_config("depth_tiny_procedural", ["model.encoder_embed_dim=64"])
  assert depth.model.encoder_embed_dim == 64 and depth.name == "depth_tiny_procedural"
  with pytest.raises(ConfigError, match="model.encoder_embed_dim"):  # the hint comes from its schema
    config_lib.load_config("depth_tiny_procedural", ["model.encoder_embed_dimm=64"])
  with pytest.raises(ConfigError):
    config_lib.load_config("depth_tiny_procedural", ["model.encoder_embed_dim=wide"])


def test_the_encoder_sizes_have_one_name_in_both_stages():
  from ois_jax.configs import common
  from ois_jax.proj.miniature.configs import depth_tiny_procedural, ois_tiny_procedural
  depth, ois = depth_tiny_procedural.get_config().model, ois_tiny_procedural.get_config().model
  assert set(common.SIZE_KEYS) <= set(depth) and set(common.SIZE_KEYS) <= set(common.base_config().model)
  assert {k: ois[k] for k in common.SIZE_KEYS} == {k: depth[k] for k in common.SIZE_KEYS}  # a copy


def test_ois_config_fields_are_the_schema_keys():
  import dataclasses
  from ois_jax.configs import common
  from ois_jax.models.ois import INIT_KEYS, OISConfig
  schema = [k for k in common.base_config().model if k not in INIT_KEYS]
  assert [f.name for f in dataclasses.fields(OISConfig)] == schema
  defaults = OISConfig.from_config({})
  assert all(getattr(defaults, k) == (tuple(v) if isinstance(v, (list, tuple)) else v)
             for k, v in common.base_config().model.items() if k not in INIT_KEYS)
