"""Progress lines of the CLI commands on stderr, without the INFO chatter of JAX and orbax."""

import logging
import sys


def setup(tag: str) -> None:
  """Route `ois_jax.*` loggers at INFO to stderr as '[tag] message'; leave other libraries alone."""
  logger = logging.getLogger("ois_jax")
  if not any(getattr(h, "_ois_cli", False) for h in logger.handlers):
    handler = logging.StreamHandler(sys.stderr)
    handler._ois_cli = True
    logger.addHandler(handler)
    logger.propagate = False
  for h in logger.handlers:
    if getattr(h, "_ois_cli", False):
      h.setFormatter(logging.Formatter(f"[{tag}] %(message)s"))
      h.setStream(sys.stderr)  # the current one: a command run in-process may have replaced it
  logger.setLevel(logging.INFO)
