"""Progress lines of the CLI commands on stderr, without the INFO chatter of JAX and orbax."""

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


DEBUG_ENV = "OIS_JAX_DEBUG"


def quiet_library_errors() -> None:
  """Keep a failure to one line: orbax's background threads report one failed save many times
  over (absl ERROR logs with tracebacks, "Event loop is closed" from its asyncio loops, "Task
  exception was never retrieved" at exit), after the command has already said what happened.
  `OIS_JAX_DEBUG=1` keeps them all."""
  import os
  import threading
  if os.environ.get(DEBUG_ENV):
    return
  for name in ("absl", "asyncio"):
    logging.getLogger(name).setLevel(logging.CRITICAL)

  def is_noise(value) -> bool:
    return isinstance(value, RuntimeError) and "Event loop is closed" in str(value)

  previous_hook, previous_thread_hook = sys.excepthook, threading.excepthook
  previous_unraisable = sys.unraisablehook

  def excepthook(kind, value, tb):
    if not is_noise(value):
      previous_hook(kind, value, tb)

  def thread_hook(args):
    if not is_noise(args.exc_value):
      previous_thread_hook(args)

  def unraisable_hook(args):
    if not is_noise(args.exc_value):
      previous_unraisable(args)

  sys.excepthook, threading.excepthook, sys.unraisablehook = excepthook, thread_hook, unraisable_hook
