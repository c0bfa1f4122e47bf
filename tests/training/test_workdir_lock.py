"""One process per workdir (ois_jax.locks), and a workdir that is not a training run is refused
before anything is written to it (workdir.check_is_run)."""

import json
import os
import socket
import subprocess
import sys

import pytest

import cli_errors  # tests/cli_errors.py
from ois_jax import cli, locks
from ois_jax.training import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(REPO, "configs", "ois_tiny.py")
SMALL = ["--config.data.dataset=procedural", "--config.model.input_size=56", "--config.data.batch_size=2",
         "--config.data.procedural_num_train=8", "--config.eval.num_samples=0", "--quiet"]


def one_line(capsys) -> str:
  return cli_errors.one_line(capsys, prefix="")


def dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def write_lock(workdir, pid, host):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, locks.LOCK_FILE), "w") as f:
    json.dump({"pid": pid, "host": host, "command": "train", "started": "2026-01-01 00:00:00"}, f)


def test_second_holder_is_refused_with_pid_and_host(tmp_path):
  with locks.WorkdirLock(str(tmp_path), "train"):
    with pytest.raises(locks.WorkdirLocked) as e:
      locks.WorkdirLock(str(tmp_path), "train").acquire()
    assert f"process {os.getpid()} on host {socket.gethostname()}" in str(e.value)
  assert not os.path.exists(tmp_path / locks.LOCK_FILE)  # released
  with locks.WorkdirLock(str(tmp_path), "train"):  # and free again
    pass
  assert os.listdir(tmp_path) == []


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
  pid = dead_pid()
  write_lock(tmp_path, pid, socket.gethostname())
  said = []
  with locks.WorkdirLock(str(tmp_path), "train", log=said.append):
    assert locks.read(str(tmp_path))["pid"] == os.getpid()
  assert said and f"process {pid}" in said[0] and "gone" in said[0]


def test_lock_of_another_host_is_not_guessed(tmp_path):
  write_lock(tmp_path, 1, "another-host")
  with pytest.raises(locks.WorkdirLocked, match="on host another-host.*remove"):
    locks.WorkdirLock(str(tmp_path), "train").acquire()
  assert locks.read(str(tmp_path))["host"] == "another-host"  # left as it was


def test_train_on_a_locked_workdir_is_one_line_and_writes_nothing(tmp_path, capsys):
  workdir = tmp_path / "run"
  with locks.WorkdirLock(str(workdir), "train"):
    code = cli.main(["train", "--config", TINY, f"--workdir={workdir}", *SMALL])
    assert code == 1
    line = one_line(capsys)
    assert f"is in use by process {os.getpid()} on host {socket.gethostname()}" in line, line
    assert os.listdir(workdir) == [locks.LOCK_FILE]


def test_quickstart_on_a_locked_workdir_is_refused(tmp_path):
  from ois_jax.proj.miniature import recipe
  with locks.WorkdirLock(str(tmp_path / "qs"), "quickstart"):
    with pytest.raises(locks.WorkdirLocked, match="in use by process"):
      recipe.quickstart(str(tmp_path / "qs"), depth_steps=1, steps=1, eval_samples=1, clicks=1, quiet=True)
  assert os.listdir(tmp_path / "qs") == []


def test_workdir_of_other_files_or_an_export_is_refused(tmp_path):
  users = tmp_path / "mine"
  users.mkdir()
  (users / "config.json").write_text('{"mine": true}')
  with pytest.raises(Exception, match="not an ois-jax training run .config.json"):
    workdir_lib.check_workdir(str(users))
  assert (users / "config.json").read_text() == '{"mine": true}'
  export = tmp_path / "export"
  export.mkdir()
  (export / "manifest.json").write_text("{}")
  with pytest.raises(Exception, match="is an export"):
    workdir_lib.check_workdir(str(export))
  weights = tmp_path / "best"
  weights.mkdir()
  (weights / "ois_checkpoint.json").write_text("{}")
  with pytest.raises(Exception, match="is a weights folder"):
    workdir_lib.check_workdir(str(weights))
  run = tmp_path / "run"
  (run / "checkpoints").mkdir(parents=True)
  (run / "config.json").write_text("{}")
  (run / "notes.txt").write_text("the user's notes in a run folder")
  assert workdir_lib.check_workdir(str(run)) == str(run)
  assert workdir_lib.check_workdir(str(tmp_path / "new")) == str(tmp_path / "new")


def test_train_keeps_users_config_json(tmp_path, capsys):
  workdir = tmp_path / "mine"
  workdir.mkdir()
  (workdir / "config.json").write_text('{"mine": true}')
  assert cli.main(["train", "--config", TINY, f"--workdir={workdir}", *SMALL]) == 1
  assert "not an ois-jax training run" in one_line(capsys)
  assert sorted(os.listdir(workdir)) == ["config.json"]
  assert (workdir / "config.json").read_text() == '{"mine": true}'
