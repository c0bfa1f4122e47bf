"""How the reliability cases make their faults, shared by scripts/reliability_cases.py and the
fault tests (tests/training/test_faults.py): the tiny training command, and damage done to a
checkpoint the way a crash or a bad disk does it."""

import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tiny config at 56 px on 8 procedural scenes: a training step in well under a second.
SMALL = ["--config.data.dataset=procedural", "--config.model.input_size=56",
         "--config.data.batch_size=2", "--config.data.procedural_num_train=8",
         "--config.data.procedural_size=(48,64)", "--config.data.num_threads=1",
         "--config.eval.num_samples=0", "--config.train.keep_checkpoints=100", "--quiet"]


def train_argv(workdir, *extra, config="configs/ois_tiny.py") -> list[str]:
  """`ois-jax train` of `config` (relative to the repository) on the SMALL settings."""
  return [sys.executable, "-m", "ois_jax", "train", "--config", os.path.join(REPO, config),
          f"--workdir={workdir}", *SMALL, *extra]


def largest_file(folder) -> str:
  files = [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs]
  return max(files, key=os.path.getsize)


def damage_file(path, how: str, stride: int = 97) -> None:
  """Damages a file as a crash does ('truncate': its second half lost) or a bad disk ('bitflip':
  every `stride`-th byte inverted)."""
  data = bytearray(open(path, "rb").read())
  if how == "truncate":
    data = data[:len(data) // 2]
  else:
    for i in range(0, len(data), stride):
      data[i] ^= 0xFF
  open(path, "wb").write(bytes(data))


def wait_for_steps(proc, events_dir, timeout=600) -> None:
  """Block until training has logged a few steps (the TensorBoard file grows per step)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      err = proc.communicate()[1] or ""
      raise AssertionError(f"training ended before it logged a step (exit {proc.returncode}): {err[-2000:]}")
    files = [os.path.join(events_dir, f) for f in os.listdir(events_dir)] if os.path.isdir(events_dir) else []
    if files and os.path.getsize(files[0]) > 2000:
      return
    time.sleep(0.2)
  proc.kill()
  raise AssertionError("training did not start")
