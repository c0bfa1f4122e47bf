"""A command that ends in a clear line prints that line only; `ois-jax --verbose` adds the
traceback and keeps the background libraries' logs (ois_jax/_logging.py)."""

import logging
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from ois_jax import _logging, cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*argv, env=None):
  return subprocess.run([sys.executable, "-m", "ois_jax", *argv], capture_output=True, text=True,
                        cwd=REPO, env=dict(os.environ, **(env or {})), timeout=300)


def test_an_error_is_one_line_and_verbose_adds_the_traceback(tmp_path):
  image = tmp_path / "i.png"
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(image)
  argv = ["segment", str(image), "--config", "configs/ois_tiny.py", "--click", "5,5,+",
          "--threshold", "2", "--out", str(tmp_path / "m.png")]
  quiet = run(*argv, env={_logging.DEBUG_ENV: ""})
  assert quiet.returncode == 1
  assert quiet.stderr.strip().splitlines() == [
      "ois-jax segment: error: --threshold must be in [0, 1], got 2.0"], quiet.stderr
  verbose = run("--verbose", *argv, env={_logging.DEBUG_ENV: ""})
  assert verbose.returncode == 1
  assert "Traceback (most recent call last)" in verbose.stderr and "check_probability" in verbose.stderr
  assert verbose.stderr.strip().splitlines()[-1] == quiet.stderr.strip()


def test_background_loggers_are_quiet_unless_verbose(monkeypatch):
  monkeypatch.delenv(_logging.DEBUG_ENV, raising=False)
  try:
    _logging.quiet_background_libraries(verbose=False)
    for name in ("absl", "asyncio", "orbax", "tensorflow_datasets"):
      assert logging.getLogger(name).level == logging.CRITICAL, name
    _logging.quiet_background_libraries(verbose=True)
    assert logging.getLogger("absl").level == logging.NOTSET
  finally:
    _logging.quiet_background_libraries(verbose=False)


def test_usage_lists_verbose(capsys):
  assert cli.main([]) == 0
  assert "--verbose" in capsys.readouterr().out
