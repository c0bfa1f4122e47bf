"""One way to stop (ois_jax.stopping): SIGINT / SIGTERM end a command with one line saying what was
kept (exit 130 / 143), temporary files and folders removed; the quickstart's stage 1 stopped half-way
is done again by a rerun, not refused."""

import os
import signal

import numpy as np
import pytest

from ois_jax import cli, outputs, stopping


def test_sigterm_inside_a_write_removes_the_partial_file(tmp_path):
  path = tmp_path / "out.npy"
  with pytest.raises(stopping.Stopped) as e, stopping.signals_stop():
    outputs.save_npy(str(tmp_path / "done.npy"), np.zeros(2))
    with outputs.writing(str(path)) as tmp:
      open(tmp, "wb").write(b"half")
      os.kill(os.getpid(), signal.SIGTERM)
  assert e.value.exit_code == 143
  assert os.listdir(tmp_path) == ["done.npy"]
  line, code = stopping.message("depth", e.value)
  assert code == 143 and line.startswith("ois-jax depth: stopped by SIGTERM; kept ")
  assert "done.npy" in line and "out.npy" not in line
  assert signal.getsignal(signal.SIGTERM) is not stopping._raise  # handlers restored


def test_sigint_in_a_staged_folder_leaves_no_staging(tmp_path):
  with pytest.raises(KeyboardInterrupt), stopping.signals_stop():
    with outputs.staged_folder(str(tmp_path / "export")) as staging:
      open(os.path.join(staging, "encoder.onnx"), "w").write("x")
      os.kill(os.getpid(), signal.SIGINT)
  assert os.listdir(tmp_path) == []


def test_a_stopped_command_is_one_line_with_its_exit_code(tmp_path, capsys, monkeypatch):
  """The real CLI entry point: `compare` stopped by SIGTERM after its table is written."""
  import json

  from ois_jax.evaluation import report
  metrics = tmp_path / "metrics.json"
  json.dump({"mIoU@1": 0.5, "mIoU@2": 0.6, "max_clicks": 2}, open(metrics, "w"))

  def stopped_plot(path, curves, title=""):
    os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(report, "plot_curves", stopped_plot)
  code = cli.main(["compare", str(metrics), "--out", str(tmp_path / "cmp")])
  err = capsys.readouterr().err.strip()
  assert code == 143 and "Traceback" not in err and len(err.splitlines()) == 1, err
  assert "stopped by SIGTERM; kept " in err and "compare.txt" in err
  assert os.listdir(tmp_path / "cmp") == ["compare.txt"]


def test_demo_session_folders_are_removed():
  pytest.importorskip("gradio")
  from ois_jax.demo import app

  class FakeEngine:
    def new_session(self):
      return None

  states = [app.PageState(FakeEngine()) for _ in range(2)]
  folders = [s.folder for s in states]
  assert all(os.path.isdir(f) and os.path.basename(f).startswith("ois-demo-") for f in folders)
  states[0].close()
  assert app.remove_session_folders() == 1
  assert not any(os.path.exists(f) for f in folders)


def test_stage1_stopped_after_its_checkpoint_is_done_again(tmp_path, monkeypatch):
  """Ctrl-C after stage 1 saved its checkpoint but before its summary: the rerun trains it again
  (it used to refuse its own folder, wedging the quickstart), and a third run reuses it."""
  from ois_jax.proj.miniature import depth_pretrain
  from ois_jax.proj.miniature.configs import depth_tiny_procedural
  config = depth_tiny_procedural.get_config()
  config.total_steps = 1
  config.model.input_size = 28
  config.model.encoder_embed_dim, config.model.encoder_num_heads, config.model.encoder_depth = 32, 2, 4
  config.model.encoder_layers = (0, 1, 2, 3)
  config.data.batch_size = 1
  workdir = str(tmp_path / "depth")
  real = depth_pretrain.heldout_depth

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(depth_pretrain, "heldout_depth", interrupted)
  with pytest.raises(KeyboardInterrupt):
    depth_pretrain.train_depth(config, workdir, quiet=True, log=lambda m: None)
  assert os.path.isdir(os.path.join(workdir, depth_pretrain.CHECKPOINT_DIR))
  assert not os.path.exists(os.path.join(workdir, depth_pretrain.SUMMARY_FILE))
  monkeypatch.setattr(depth_pretrain, "heldout_depth", real)
  said = []
  again = depth_pretrain.train_depth(config, workdir, quiet=True, log=said.append)
  assert not again["reused"] and any("stopped before it finished" in m for m in said)
  assert depth_pretrain.train_depth(config, workdir, quiet=True, log=said.append)["reused"]


def test_a_stop_swallowed_by_a_callback_prints_no_traceback():
  # In a subprocess: pytest installs its own unraisable-exception hook.
  import subprocess
  import sys
  script = """
import gc, os, signal
from ois_jax import stopping
class RaisesInDel:
  def __del__(self):
    os.kill(os.getpid(), signal.SIGTERM)  # the handler raises Stopped inside __del__
with stopping.signals_stop():
  obj = RaisesInDel()
  del obj
  gc.collect()
  print("received", stopping.received())
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
  assert result.returncode == 0 and "received 15" in result.stdout, result.stderr
  assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
