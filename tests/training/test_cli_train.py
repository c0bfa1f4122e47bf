"""`ois-jax train` end to end with the real tiny model: a fresh run, then a resume on the same workdir."""

import json

import jax
import pytest

from ois_jax import cli

ARGS = ["--config", "configs/ois_tiny.py", "--config.data.dataset=procedural",
        "--config.model.depth_source=external", "--config.model.input_size=56",
        "--config.data.batch_size=2", "--config.data.procedural_num_train=8",
        "--config.data.procedural_size=(48,64)", "--config.data.num_threads=1",
        "--config.eval.num_samples=2", "--config.eval.max_clicks=3", "--config.eval.batch_size=2",
        "--config.data.procedural_num_val=2", "--quiet"]


@pytest.mark.slow  # three compiles of the real model (~2.5 min on 2 shared cores)
def test_train_cli_runs_and_resumes(tmp_path, capsys, monkeypatch):
  import pathlib
  monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[2])
  # The second run compiles the same programs: the persistent cache makes it cheap.
  jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  workdir = tmp_path / "run"
  assert cli.main(["train", *ARGS, f"--workdir={workdir}", "--config.total_steps=2"]) == 0
  first = capsys.readouterr().out
  assert "from scratch" in first and "Finished at step 2" in first
  assert "NoC90" in first                          # validation ran at the end
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["total_steps"] == 2 and saved["model"]["input_size"] == 56
  assert (workdir / "checkpoints" / "2").is_dir()
  assert any((workdir / "tensorboard").iterdir())

  assert cli.main(["train", *ARGS, f"--workdir={workdir}", "--config.total_steps=3"]) == 0
  second = capsys.readouterr().out
  assert "Resuming from checkpoint at step 2" in second and "Finished at step 3" in second


def test_train_cli_reports_bad_usage(capsys):
  assert cli.main(["train", "--config", "configs/ois_tiny.py"]) == 1
  assert "--workdir is required" in capsys.readouterr().err
  assert cli.main(["train", "--workdir", "/tmp/x", "--config", "configs/no_such_config.py"]) == 1
  assert "no_such_config.py" in capsys.readouterr().err


def test_train_cli_data_dir_without_images(tmp_path, capsys):
  empty = tmp_path / "no_images"
  empty.mkdir()
  (empty / "readme.txt").write_text("not an image")
  code = cli.main(["train", "--config", "configs/ois_tiny.py", f"--workdir={tmp_path / 'run'}",
                   f"--config.data_dir={empty}", "--quiet"])
  assert code == 1
  err = capsys.readouterr().err
  assert str(empty) in err and "image" in err and "Traceback" not in err


# The recipe shrunk to seconds per stage: a 16-d depth model at 56 px on 48 x 64 scenes.
QUICKSTART_ARGS = ["--depth-steps=2", "--steps=2", "--eval-samples=2", "--clicks=3", "--quiet",
                   "--depth-config.model.encoder_embed_dim=16", "--depth-config.model.encoder_num_heads=2",
                   "--depth-config.model.head_features=8",
                   "--depth-config.model.head_out_channels=(4,8,16,16)",
                   "--depth-config.model.input_size=56", "--depth-config.data.procedural_size=(48,64)",
                   "--depth-config.data.batch_size=2", "--config.data.procedural_size=(48,64)",
                   "--config.data.batch_size=2", "--config.model.prompt_dim=16", "--config.model.mlp_dim=32",
                   "--config.eval.batch_size=2"]


@pytest.mark.slow  # stages 1-3 of the real recipe at tiny sizes (~2-3 min on 2 shared cores)
def test_quickstart_runs_the_recipe_and_resumes(tmp_path, capsys):
  # The evaluations of the initial and the trained model, and the second run's, compile the same
  # programs: the persistent cache makes them cheap.
  jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  workdir = tmp_path / "qs"
  assert cli.main(["quickstart", f"--workdir={workdir}", *QUICKSTART_ARGS]) == 0
  out = capsys.readouterr().out
  for stage in ("Stage 1", "Stage 2", "Stage 3"):
    assert f"== {stage}" in out
  assert "2 held-out procedural scenes, 3 clicks" in out and "NoC90" in out
  for label in ("init", "trained", "no order"):
    assert f"\n{label} " in out
  assert (workdir / "miou_vs_clicks.png").stat().st_size > 0
  assert (workdir / "table.txt").read_text().count("|") > 10
  record = json.loads((workdir / "metrics.json").read_text())
  assert set(record["metrics"]) == {"init", "trained", "no order"}
  assert all(m["num_samples"] == 2 and m["max_clicks"] == 3 for m in record["metrics"].values())
  # Stage 1 is a converted DAv2 checkpoint; stage 2 started from it (encoder frozen: unchanged).
  from ois_jax import checkpoint
  depth_params, depth_config = checkpoint.load_checkpoint(str(workdir / "depth" / "checkpoint"))
  assert depth_config["model"] == "depth_anything_v2" and depth_config["variant"] == "custom"
  init_record = json.loads((workdir / "ois" / "init_weights.json").read_text())
  assert init_record["depth_checkpoint"] == str(workdir / "depth" / "checkpoint")
  saved = json.loads((workdir / "ois" / "config.json").read_text())
  assert saved["model"]["depth_source"] == "head" and saved["model"]["use_order"] is True
  assert json.loads((workdir / "ois_no_order" / "config.json").read_text())["model"]["use_order"] is False

  # The same command again: everything is reused and the figures are identical.
  assert cli.main(["quickstart", f"--workdir={workdir}", *QUICKSTART_ARGS]) == 0
  assert "continuing the run" in capsys.readouterr().out
  again = json.loads((workdir / "metrics.json").read_text())
  for label, m in record["metrics"].items():
    assert {k: v for k, v in m.items() if k != "SPC"} == {k: v for k, v in again["metrics"][label].items()
                                                          if k != "SPC"}

  # Other settings on that workdir, or a folder that is not a quickstart: refused, one line.
  assert cli.main(["quickstart", f"--workdir={workdir}", *QUICKSTART_ARGS, "--steps=3"]) == 1
  assert "other settings (ois differ)" in capsys.readouterr().err
  other = tmp_path / "mine"
  other.mkdir()
  (other / "notes.txt").write_text("keep me")
  assert cli.main(["quickstart", f"--workdir={other}", *QUICKSTART_ARGS]) == 1
  assert "not a quickstart run" in capsys.readouterr().err
  assert (other / "notes.txt").read_text() == "keep me"


def test_quickstart_bad_arguments(tmp_path, capsys):
  assert cli.main(["quickstart", f"--workdir={tmp_path}", "--steps=0"]) == 1
  assert "--steps must be positive" in capsys.readouterr().err
  assert cli.main(["quickstart", f"--workdir={tmp_path}", "--config.model.input_size=56"]) == 1
  assert "the encoder comes from stage 1" in capsys.readouterr().err
  assert cli.main(["quickstart", f"--workdir={tmp_path}", "--config.model.no_such_key=1"]) == 1
  assert "no such config key" in capsys.readouterr().err
