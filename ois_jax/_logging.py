"""Quieting a library's logger for one call whose warnings are known to be harmless."""

import contextlib
import logging


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
