"""What ois-jax does with other libraries' logs, in one place.

- `quieted(name)`: one call whose warnings are known to be harmless (orbax reading a step's
  metadata piecemeal).
- `OrbaxNoise`: the periodic saves carry no metrics by design; orbax warns about each one.
- `quiet_background_libraries(verbose)`: the CLI's setting. A failure must end in one clear line:
  orbax's background threads report one failed save many times over (absl ERROR logs with
  tracebacks, "Event loop is closed" from its asyncio loops, "Task exception was never retrieved"
  at exit), tfds and absl log INFO chatter, after the command has already said what happened.
  `ois-jax --verbose COMMAND` (or `OIS_JAX_DEBUG=1`) keeps all of it, and a command's error
  then comes with its traceback.
"""

import contextlib
import logging
import os
import sys
import threading

DEBUG_ENV = "OIS_JAX_DEBUG"
BACKGROUND = ("absl", "asyncio", "orbax", "tensorflow", "tensorflow_datasets")


@contextlib.contextmanager
def quieted(logger_name: str, level: int = logging.ERROR):
  """Raise `logger_name`'s level to `level` inside the block; restored afterwards."""
  logger = logging.getLogger(logger_name)
  previous = logger.level
  logger.setLevel(level)
  try:
    yield
  finally:
    logger.setLevel(previous)


class OrbaxNoise(logging.Filter):
  """Drops orbax's warning that a periodic save "did not provide metrics" (by design)."""

  def filter(self, record):
    return "did not provide metrics" not in record.getMessage()


def install_filters() -> None:
  """The filters that hold for the API too (idempotent)."""
  absl = logging.getLogger("absl")
  if not any(isinstance(f, OrbaxNoise) for f in absl.filters):
    absl.addFilter(OrbaxNoise())


_hooks_installed = False


def is_verbose(verbose: bool = False) -> bool:
  return bool(verbose or os.environ.get(DEBUG_ENV))


def quiet_background_libraries(verbose: bool = False) -> None:
  """The CLI's logging of other libraries: errors only, and no echo of a failure already reported
  in one line (see the module docstring); everything when `verbose`."""
  global _hooks_installed
  install_filters()
  if is_verbose(verbose):
    for name in BACKGROUND:
      logging.getLogger(name).setLevel(logging.NOTSET)
    return
  for name in BACKGROUND:
    logging.getLogger(name).setLevel(logging.CRITICAL)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # tfds' TensorFlow C++ logs
  if _hooks_installed:
    return
  _hooks_installed = True

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
