"""Checkpoints: exact resume (with the real grain iterator), retention, and a kill during a save."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from ois_jax.training import checkpointing, trainer



def _config(standin):
  cfg = standin.config(size=32, batch=4)
  cfg.data.dataset = "procedural"
  cfg.data.procedural_num_train = 5       # several epochs in 6 steps: reshuffling is covered
  cfg.data.procedural_size = (48, 64)
  cfg.data.num_threads = 1
  cfg.checkpoint_every = 100
  cfg.train.log_every = 1
  return cfg


def _make_data(cfg):
  from ois_jax.data_pipelines import training as data_training
  return data_training.make_train_iterator(cfg, None, int(cfg.seed))


def _train(standin, cfg, workdir, stop_at=None):
  cfg.total_steps = 6
  cfg.train.lr_decay_steps = (0.6,)   # the decay (step 4) falls inside the resumed part
  messages = []
  summary = trainer.train(cfg, str(workdir), fns=standin.FNS, make_data=_make_data,
                          make_validation=lambda *a: None, quiet=True, log=messages.append,
                          stop_at=stop_at)
  return summary, messages


def test_resume_is_bit_exact(standin, tmp_path):
  # The three runs compile the same programs: the persistent cache compiles them once.
  jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  cfg = _config(standin)
  full, _ = _train(standin, cfg, tmp_path / "full")
  first, msg1 = _train(standin, _config(standin), tmp_path / "split", stop_at=3)
  second, msg2 = _train(standin, _config(standin), tmp_path / "split")
  assert "from scratch" in msg1[0]
  assert msg2[0].startswith("Resuming from checkpoint at step 3")
  assert second["start_step"] == 3 and second["final_step"] == 6
  losses_full = [h["loss"] for h in full["history"]]
  losses_split = [h["loss"] for h in first["history"] + second["history"]]
  assert losses_split == losses_full                      # bit for bit, same data order
  for a, b in zip(jax.tree.leaves(full["state"]), jax.tree.leaves(second["state"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert (tmp_path / "split" / "config.json").exists()


def test_keep_latest_and_best(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path / "ck"), keep=2, best_metric="NoC90", async_save=False)
  state = {"step": np.int32(0), "params": {"w": np.zeros(3, np.float32)}}
  noc = {2: 3.0, 4: 5.0}
  for step in range(1, 6):
    metrics = {"NoC90": noc[step]} if step in noc else None
    ckpt.save(step, dict(state, step=np.int32(step)), {"index": step}, metrics=metrics)
  ckpt.wait()
  assert sorted(ckpt.all_steps()) == [2, 4, 5]
  assert ckpt.best_step() == 2
  restored, data_state, step = ckpt.restore(state, 2)
  assert step == 2 and int(restored["step"]) == 2 and data_state == {"index": 2}
  ckpt.close()


KILL_SCRIPT = r"""
import sys, numpy as np
from ois_jax.training import checkpointing
ckpt = checkpointing.Checkpointer(sys.argv[1], keep=5, async_save=False)
small = {"step": np.int32(1), "params": {"w": np.full((8,), 1.0, np.float32)}}
ckpt.save(1, small, {"index": 1})
ckpt.wait()
print("SAVED1", flush=True)
big = {"step": np.int32(2), "params": {f"w{i}": np.full((1 << 20,), 2.0, np.float32) for i in range(48)}}
step = 2
while True:  # keep saving until killed
  ckpt.save(step, dict(big, step=np.int32(step)), {"index": step})
  step += 1
"""


def test_kill_during_save_keeps_last_good(tmp_path):
  root = pathlib.Path(__file__).resolve().parents[2]
  directory = tmp_path / "ck"
  proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(directory)], cwd=root,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    assert proc.stdout.readline().strip() == "SAVED1", proc.stderr.read()
    seen_tmp = False
    deadline = time.time() + 120
    while time.time() < deadline and not seen_tmp:
      seen_tmp = any("tmp" in name for name in os.listdir(directory))
      if not seen_tmp:
        time.sleep(0.005)
    assert seen_tmp, os.listdir(directory)
    os.kill(proc.pid, signal.SIGKILL)
  finally:
    proc.kill()
    proc.wait()
  ckpt = checkpointing.Checkpointer(str(directory), keep=5, async_save=False)
  latest = ckpt.latest_step()
  assert latest is not None and latest >= 1
  target = {"step": np.int32(0), "params": {"w": np.zeros(8, np.float32)}}
  if latest >= 2:
    target = {"step": np.int32(0),
              "params": {f"w{i}": np.zeros(1 << 20, np.float32) for i in range(48)}}
  restored, data_state, step = ckpt.restore(target)
  assert int(restored["step"]) == latest and data_state == {"index": latest}
  expected = 1.0 if latest == 1 else 2.0
  assert all(np.all(np.asarray(v) == expected) for v in restored["params"].values())
  assert not any("tmp" in name for name in os.listdir(directory))  # the torn save was cleaned up
  ckpt.close()
