"""Progress lines of the CLI commands on stderr (other libraries' logs: ois_jax/_logging.py)."""

import logging
import sys


class _StderrHandler(logging.StreamHandler):
  """Writes to whatever sys.stderr is now (it may be replaced after setup, e.g. by a test)."""

  @property
  def stream(self):
    return sys.stderr

  @stream.setter
  def stream(self, value):
    pass


def setup(tag: str) -> None:
  """Route `ois_jax.*` loggers at INFO to stderr as '[tag] message'; leave other libraries alone."""
  logger = logging.getLogger("ois_jax")
  if not any(getattr(h, "_ois_cli", False) for h in logger.handlers):
    handler = _StderrHandler()
    handler._ois_cli = True
    logger.addHandler(handler)
    logger.propagate = False
  for h in logger.handlers:
    if getattr(h, "_ois_cli", False):
      h.setFormatter(logging.Formatter(f"[{tag}] %(message)s"))
  logger.setLevel(logging.INFO)
