"""A diverged run stops at the step that went NaN or infinite and keeps its last finite checkpoint;
weights holding NaN or inf are never saved as an export nor loaded."""

import importlib.util
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax import Predictor, checkpoint, cli
from ois_jax.errors import CheckpointError
from ois_jax.training import train_step as ts

_spec = importlib.util.spec_from_file_location("training_test_faults",
                                               os.path.join(os.path.dirname(__file__), "test_faults.py"))
faults = importlib.util.module_from_spec(_spec)  # its train_argv, run and assert_one_line_error
_spec.loader.exec_module(faults)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  cache = os.environ.get("OIS_JAX_COMPILATION_CACHE") or str(tmp_path_factory.mktemp("jax_cache"))
  return dict(os.environ, OIS_JAX_COMPILATION_CACHE=cache, PYTHONUNBUFFERED="1")


def test_nonfinite_code_names_what_went_wrong():
  finite = {"w": jnp.ones(3), "step": jnp.zeros((), jnp.int32)}
  nan = {"w": jnp.array([1.0, jnp.nan, 0.0]), "step": jnp.zeros((), jnp.int32)}
  assert int(ts.nonfinite_code(jnp.float32(1.0), finite, finite)) == 0
  assert int(ts.nonfinite_code(jnp.float32(jnp.inf), finite, finite)) == ts.NONFINITE_LOSS
  code = int(ts.nonfinite_code(jnp.float32(jnp.nan), nan, nan))
  assert code == ts.NONFINITE_LOSS | ts.NONFINITE_GRADS | ts.NONFINITE_PARAMS
  assert ts.describe_nonfinite(code) == "the loss, the gradients and the updated weights"


def test_a_diverged_run_stops_at_its_step_and_keeps_the_last_finite_checkpoint(tmp_path, env):
  workdir = tmp_path / "run"
  result = faults.run(faults.train_argv(workdir, "--config.total_steps=6", "--config.checkpoint_every=1",
                                        "--config.train.learning_rate=1e30"), env)
  assert result.returncode == 1
  err = faults.assert_one_line_error(result, "became NaN or infinite at step 2",
                                     "the last finite checkpoint, step 1, is kept")
  assert sorted(os.listdir(workdir / "checkpoints")) == ["1"], err
  assert not (workdir / "best").exists() and not (workdir / "final").exists()
  weights = checkpoint.load_weights(str(workdir / "checkpoints" / "1"))  # finite: it loads
  assert not checkpoint.nonfinite_leaves(weights.params)


@pytest.fixture
def nan_checkpoint(tmp_path, monkeypatch):
  """An export whose weights hold one NaN (written past the save-time check, as an edited or
  foreign file would be)."""
  with monkeypatch.context() as m:
    m.setattr(checkpoint, "check_finite", lambda *a: None)
    params = {"encoder": {"w": np.array([1.0, np.nan, 2.0], np.float32)}, "head": {"b": np.ones(2, np.float32)}}
    return checkpoint.save_checkpoint(str(tmp_path / "nan"), params, {"model": {}})


def test_save_checkpoint_refuses_nonfinite_weights(tmp_path):
  with pytest.raises(CheckpointError, match="refusing to save: 1 weights are NaN or infinite"):
    checkpoint.save_checkpoint(str(tmp_path / "x"), {"w": np.array([np.inf], np.float32)}, {"model": {}})
  assert not os.path.exists(tmp_path / "x")


def test_loading_nonfinite_weights_is_refused(nan_checkpoint, tmp_path, capsys):
  with pytest.raises(CheckpointError, match=r"1 weights are NaN or infinite, in 1 arrays: encoder/w \(1\)"):
    Predictor.from_checkpoint(nan_checkpoint)
  image = tmp_path / "i.png"
  from PIL import Image
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(image)
  assert cli.main(["segment", str(image), "--checkpoint", nan_checkpoint, "--click", "5,5,+",
                   "--out", str(tmp_path / "m.png")]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "NaN or infinite" in err[0], err
  assert cli.main(["evaluate", "--checkpoint", nan_checkpoint, "--dataset", "procedural",
                   "--out", str(tmp_path / "e")]) == 1
  assert "NaN or infinite" in capsys.readouterr().err
  assert json.load(open(os.path.join(nan_checkpoint, checkpoint.METADATA_FILE)))["config"] == {"model": {}}
