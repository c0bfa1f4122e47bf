"""Progress lines of the CLI commands on stderr, without the INFO chatter of JAX and orbax."""

import logging
import sys


class _CurrentStderr(logging.StreamHandler):
  """A StreamHandler on whatever sys.stderr is when a record is written (commands run in-process,
  e.g. by tests, may replace and close it between two commands)."""

  @property
  def stream(self):
    return sys.stderr

  @stream.setter
  def stream(self, value):
    pass  # always the current sys.stderr


def setup(tag: str) -> None:
  """Route `ois_jax.*` loggers at INFO to stderr as '[tag] message'; leave other libraries alone."""
  logger = logging.getLogger("ois_jax")
  if not any(getattr(h, "_ois_cli", False) for h in logger.handlers):
    handler = _CurrentStderr()
    handler._ois_cli = True
    logger.addHandler(handler)
    logger.propagate = False
  for h in logger.handlers:
    if getattr(h, "_ois_cli", False):
      h.setFormatter(logging.Formatter(f"[{tag}] %(message)s"))
  logger.setLevel(logging.INFO)
