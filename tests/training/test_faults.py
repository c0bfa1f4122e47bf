"""`ois-jax train` under the faults pods meet, each run as a real subprocess on the tiny model:
a full disk, a damaged newest checkpoint, SIGTERM / SIGINT mid-training, a resume with another
config, and a workdir or config that cannot work."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from ois_jax import cli
from ois_jax.checkpoint import load_weights
from faults import SMALL, damage_file, largest_file, train_argv, wait_for_steps

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """The subprocesses share a persistent compilation cache: one compile for the whole module."""
  cache = tmp_path_factory.mktemp("jax_cache")
  return dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", PYTHONUNBUFFERED="1")


def run(argv, env, timeout=600):
  return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def assert_one_line_error(result, *needles):
  """The command's error is one line (progress lines "[train] ..." may precede it)."""
  assert result.returncode != 0, result.stdout + result.stderr
  err = result.stderr.strip()
  assert "Traceback" not in err and "Event loop is closed" not in err, err
  errors = [line for line in err.splitlines() if not line.startswith("[")]
  assert len(errors) == 1, err
  for needle in needles:
    assert needle in errors[0], err
  return errors[0]


# --- a full disk ----------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
  """An 8 MB tmpfs (room for two tiny-model checkpoints of 2.6 MB, not for a third)."""
  mount = tmp_path / "disk"
  mount.mkdir()
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
  if result.returncode != 0:
    message = f"cannot mount a small tmpfs here ({result.stderr.strip()}); needs root"
    if os.environ.get("CI", "").lower() == "true":
      pytest.fail(message)
    pytest.skip(message)
  yield mount
  subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_stops_with_one_line_and_keeps_the_last_checkpoint(small_disk, env):
  workdir = small_disk / "run"
  start = time.monotonic()
  result = run(train_argv(workdir, "--config.total_steps=1000", "--config.checkpoint_every=1"), env)
  assert time.monotonic() - start < 600  # it ends: the old code hung forever here
  err = assert_one_line_error(result, "no space left", str(workdir))
  committed = sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())
  assert committed, err
  assert f"step {committed[-1]}, is intact" in err
  weights = load_weights(str(workdir / "checkpoints" / str(committed[-1])))  # restores
  assert "encoder" in weights.params


# --- a damaged newest checkpoint ------------------------------------------------------------------
@pytest.fixture(scope="module")
def three_steps(tmp_path_factory, env):
  """A workdir with checkpoints 1, 2 and 3 (kept as a pristine copy)."""
  workdir = tmp_path_factory.mktemp("three") / "run"
  result = run(train_argv(workdir, "--config.total_steps=3", "--config.checkpoint_every=1"), env)
  assert result.returncode == 0, result.stderr
  return workdir


def copy_of(workdir, tmp_path):
  target = tmp_path / "run"
  shutil.copytree(workdir, target)
  return target


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "no_state"])
def test_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(three_steps, tmp_path, env, damage):
  workdir = copy_of(three_steps, tmp_path)
  newest = workdir / "checkpoints" / "3"
  if damage == "no_state":
    shutil.rmtree(newest / "state")
  else:
    damage_file(largest_file(newest / "state"), damage)
  result = run(train_argv(workdir, "--config.total_steps=4", "--config.checkpoint_every=1"), env)
  assert result.returncode == 0, result.stderr
  out = result.stdout
  assert "Checkpoint step 3 is damaged and was moved to" in out, out
  assert "Resuming from checkpoint at step 2" in out, out
  set_aside = os.listdir(workdir / "checkpoints_damaged")
  assert len(set_aside) == 1 and set_aside[0].startswith("3-")  # kept, never deleted
  assert (workdir / "checkpoints" / "4").is_dir()


# --- SIGTERM / SIGINT -----------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_the_current_step_and_a_rerun_resumes_from_it(tmp_path, env, signum):
  workdir = tmp_path / "run"
  argv = train_argv(workdir, "--config.total_steps=100000", "--config.checkpoint_every=100000",
                    "--config.train.log_every=1")
  proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=REPO)
  wait_for_steps(proc, workdir / "tensorboard")
  proc.send_signal(signum)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signum, err
  name = signal.Signals(signum).name
  assert f"stopped by {name} at step" in err and "Traceback" not in err, err
  step = int(err.split(f"stopped by {name} at step ")[1].split(";")[0])
  assert step >= 1
  committed = sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())
  assert committed == [step]  # saved at the step it stopped, committed before the exit
  assert json.loads((workdir / "train_summary.json").read_text())["final_step"] == step
  again = run(train_argv(workdir, f"--config.total_steps={step + 1}"), env)
  assert again.returncode == 0, again.stderr
  assert f"Resuming from checkpoint at step {step}" in again.stdout


# --- a resume with another config -----------------------------------------------------------------
def test_resume_with_another_model_config_is_refused_and_the_record_kept(three_steps, tmp_path, env):
  workdir = copy_of(three_steps, tmp_path)
  saved = (workdir / "config.json").read_text()
  history = json.loads((workdir / "train_summary.json").read_text())["history"]
  assert len(history) == 3
  # Same shapes, another model: object-first vs order-first blocks.
  result = run(train_argv(workdir, "--config.total_steps=4",
                          config="configs/ois_ablation.py:order_first,tiny"), env)
  assert_one_line_error(result, "trained with another config", "model.block_order")
  assert (workdir / "config.json").read_text() == saved  # the record still describes the model
  # Keys that may change (steps, schedule, logging) resume, and say so; the history is kept.
  result = run(train_argv(workdir, "--config.total_steps=4", "--config.train.learning_rate=0.0005",
                          "--config.checkpoint_every=1"), env)
  assert result.returncode == 0, result.stderr
  assert "safe to change" in result.stdout and "train.learning_rate" in result.stdout
  summary = json.loads((workdir / "train_summary.json").read_text())
  assert [h["step"] for h in summary["history"]] == [1, 2, 3, 4]
  assert json.loads((workdir / "config.json").read_text())["total_steps"] == 4


# --- bad workdirs and values, refused before anything compiles -------------------------------------
def one_line(capsys) -> str:
  err = capsys.readouterr().err.strip()
  assert "Traceback" not in err and len(err.splitlines()) == 1, err
  return err


def test_workdir_that_is_a_file_or_read_only_and_bad_values(tmp_path, capsys):
  base = ["train", "--config", os.path.join(REPO, "configs", "ois_tiny.py"), *SMALL]
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  assert cli.main(base + [f"--workdir={a_file}"]) == 1
  assert "is a file" in one_line(capsys)

  read_only = tmp_path / "ro"
  read_only.mkdir()
  if os.geteuid() == 0:  # root ignores permission bits: a read-only mount instead
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)], check=True)
  else:
    read_only.chmod(0o555)
  try:
    assert cli.main(base + [f"--workdir={read_only / 'run'}"]) == 1
    assert "cannot write there" in one_line(capsys)
  finally:
    if os.geteuid() == 0:
      subprocess.run(["umount", "-l", str(read_only)])

  start = time.monotonic()
  assert cli.main(base + [f"--workdir={tmp_path / 'run'}", "--config.data.batch_size=0"]) == 1
  assert "data.batch_size must be a positive integer" in one_line(capsys)
  assert cli.main(base + [f"--workdir={tmp_path / 'run'}", "--config.nosuchkey=1"]) == 1
  assert "nosuchkey" in one_line(capsys)
  assert time.monotonic() - start < 60  # nothing was built or compiled
  assert not (tmp_path / "run" / "checkpoints").exists()
