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


@pytest.mark.slow  # compiles the real tiny model (~1-2 min on 2 shared cores)
def test_quickstart_end_to_end_on_procedural(tmp_path, capsys):
  workdir = tmp_path / "qs"
  code = cli.main(["quickstart", f"--workdir={workdir}", f"--data-dir={tmp_path / 'no_data'}",
                   "--steps=3", "--minutes=5", "--eval-samples=2"])
  assert code == 0
  out = capsys.readouterr().out
  assert "procedural held-out: 2 samples" in out
  assert "ois_tiny init" in out and "ois_tiny trained" in out and "NoC90" in out
  assert (workdir / "miou_vs_clicks.png").stat().st_size > 0
  saved = json.loads((workdir / "metrics.json").read_text())
  assert set(saved) == {"ois_tiny init", "ois_tiny trained"}
  assert saved["ois_tiny trained"]["num_samples"] == 2
