"""Real multi-process training: 2 processes on 127.0.0.1 (CPU, gloo collectives, 2 devices each).

They train the stand-in model on the procedural pipeline with the parameters FSDP-sharded across
both processes, checkpoint, resume in a second `train` call, and must end with the params and
losses of a 1-process, 1-device run on the same global batches.
"""

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from ois_jax.errors import DistributedError

ROOT = pathlib.Path(__file__).resolve().parents[2]
STANDIN = pathlib.Path(__file__).with_name("standin_model.py")
STEPS, STOP_AT = 4, 2

WORKER = r"""
import importlib.util, json, os, sys
import numpy as np
standin_path, workdir, port, process_id = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
spec = importlib.util.spec_from_file_location("standin", standin_path)
sm = importlib.util.module_from_spec(spec); spec.loader.exec_module(sm)
sys.path.insert(0, os.path.dirname(standin_path))
from test_multiprocess import make_config
from ois_jax.training import distributed, trainer

cfg = make_config(sm)
cfg.train.distributed = True
cfg.train.coordinator_address = f"127.0.0.1:{port}"
cfg.train.num_processes, cfg.train.process_id = 2, process_id
cfg.train.distributed_timeout_s = 60
cfg.train.mesh_shape = (1, -1)  # FSDP over all 4 devices: every big param spans both processes
first = trainer.train(cfg, workdir, fns=sm.FNS, quiet=True, stop_at=%(stop_at)d)
import jax
assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
kernel = first["state"]["params"]["seg_head"]["layers_2"]["kernel"]
spans_processes = not kernel.is_fully_addressable
second = trainer.train(cfg, workdir, fns=sm.FNS, quiet=True)  # resumes from step %(stop_at)d
params = distributed.host_local(second["state"]["params"])
if distributed.is_main():
  out = dict(first_losses=[h["loss"] for h in first["history"]],
             second_losses=[h["loss"] for h in second["history"]],
             start_step=second["start_step"], final_step=second["final_step"],
             spans_processes=spans_processes,
             data_stats=[first["data_stats"], second["data_stats"]],
             params={jax.tree_util.keystr(p): np.asarray(x).tolist()
                     for p, x in jax.tree_util.tree_flatten_with_path(params)[0]})
  print("RESULT" + json.dumps(out))
""" % {"stop_at": STOP_AT}


def make_config(standin):
  """The stand-in's tiny config on procedural scenes: global batch 4, 4 steps, a checkpoint
  every 2, no validation (shared by the workers and the 1-process reference).

  A skipped record is replaced from the process's own next rows, so batches match a 1-process
  run only without skips: the minimum object area suits the 32-px input, and the levels world's
  objects are large enough for it (the camera world's far objects are not; the tests check that
  nothing was skipped).
  """
  cfg = standin.config(size=32, batch=4)
  cfg.data.dataset = "procedural"
  cfg.data.min_object_area = 20
  cfg.data.procedural_world = "levels"
  cfg.data.procedural_num_train = 16
  cfg.data.procedural_size = (48, 64)
  cfg.data.num_threads = 0
  cfg.total_steps, cfg.checkpoint_every = STEPS, STOP_AT
  cfg.train.log_every = 1
  cfg.eval.num_samples = 0
  return cfg


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _load_standin():
  spec = importlib.util.spec_from_file_location("standin_reference", STANDIN)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_two_processes_train_checkpoint_resume_equal_one_process(tmp_path):
  workdir = tmp_path / "two"
  # The resumed `train` call compiles the same programs again: a compilation cache shared by the
  # call pair halves the test's time.
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2",
             PYTHONUNBUFFERED="1", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  port = str(_free_port())
  procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(STANDIN), str(workdir), port, str(i)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  outputs = []
  try:
    for p in procs:
      outputs.append(p.communicate(timeout=240))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  line = [x for x in outputs[0][0].splitlines() if x.startswith("RESULT")][-1]
  two = json.loads(line[len("RESULT"):])
  assert not any(x.startswith("RESULT") for x in outputs[1][0].splitlines())  # process 0 reports
  assert two["spans_processes"]  # the FSDP-sharded kernel really lives on both processes
  assert two["start_step"] == STOP_AT and two["final_step"] == STEPS
  assert not any(k.startswith("skipped") for stats in two["data_stats"] for k in stats), two["data_stats"]
  # Checkpoints: one directory, written by both processes together.
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [STOP_AT, STEPS], steps
  assert (workdir / "config.json").is_file() and (workdir / "train_summary.json").is_file()

  # The reference: one process, one device, the same global batches, no break.
  from ois_jax.training import trainer
  standin = _load_standin()
  one = trainer.train(make_config(standin), str(tmp_path / "one"), fns=standin.FNS, quiet=True)
  one_losses = [h["loss"] for h in one["history"]]
  assert not any(k.startswith("skipped") for k in one["data_stats"]), one["data_stats"]
  two_losses = two["first_losses"] + two["second_losses"]
  print("losses 1 process:", one_losses)
  print("losses 2 processes:", two_losses)
  np.testing.assert_allclose(two_losses, one_losses, rtol=1e-5)
  import jax
  reference = {jax.tree_util.keystr(p): np.asarray(x)
               for p, x in jax.tree_util.tree_flatten_with_path(one["state"]["params"])[0]}
  worst = max(float(np.max(np.abs(np.asarray(two["params"][k]) - v))) for k, v in reference.items())
  print(f"max |param difference| after {STEPS} steps: {worst:.3g}")
  for key, value in reference.items():
    np.testing.assert_allclose(np.asarray(two["params"][key]), value, rtol=2e-5, atol=2e-6,
                               err_msg=key)
  # The params moved: equality is not trivially that of the initial state.
  initial = standin.FNS.init_params(standin.FNS.build_model(make_config(standin).model),
                                    jax.random.key(0))
  moved = np.asarray(initial["seg_head"]["layers_2"]["kernel"])
  assert np.max(np.abs(reference["['seg_head']['layers_2']['kernel']"] - moved)) > 1e-4


def test_process_rows_make_the_one_process_batches():
  """Each process's iterator yields its rows of the global batch a single process sees."""
  from ois_jax.data_pipelines import training
  standin = _load_standin()
  cfg = make_config(standin)
  source = training.make_source(cfg, "train")
  single = training.make_train_iterator(cfg, source, seed=3, shard_index=0, shard_count=1)
  parts = [training.make_train_iterator(cfg, source, seed=3, shard_index=i, shard_count=2)
           for i in range(2)]
  for _ in range(5):  # more than one epoch of 16 records
    whole = next(single)
    halves = [next(p) for p in parts]
    for key in whole:
      np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), whole[key], key)
  assert sum(p.stats["records"] for p in parts) == single.stats["records"] == 20
  assert not any(k.startswith("skipped") for k in single.stats)


def test_distributed_settings_from_config_and_environment(monkeypatch):
  from ois_jax.configs import ois_tiny
  from ois_jax.training import distributed
  cfg = ois_tiny.get_config()
  for env in distributed.ENVIRONMENT.values():
    monkeypatch.delenv(env, raising=False)
  assert distributed.settings(cfg) == dict(coordinator_address=None, num_processes=None,
                                           process_id=None)
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
  monkeypatch.setenv("JAX_PROCESS_ID", "3")
  assert distributed.settings(cfg) == dict(coordinator_address="10.0.0.1:1234", num_processes=4,
                                           process_id=3)
  cfg.train.process_id = 1  # the config wins over the environment
  assert distributed.settings(cfg)["process_id"] == 1
  for key, value, match in [("process_id", 4, "outside"), ("num_processes", 0, "at least 1"),
                            ("coordinator_address", "10.0.0.1", "HOST:PORT")]:
    bad = ois_tiny.get_config()
    bad.train[key] = value
    with pytest.raises(DistributedError, match=match):
      distributed.settings(bad)
  monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
  with pytest.raises(DistributedError, match="JAX_NUM_PROCESSES must be an integer"):
    distributed.settings(ois_tiny.get_config())
  assert issubclass(DistributedError, ValueError)
