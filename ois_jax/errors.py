"""Exceptions with messages meant for users.

The CLI prints an OISError as one line, without a traceback. Every error the API raises for bad
input is in one of Python's two families: errors about a bad argument value (an image, clicks, a
config key) subclass ValueError; errors about a file or folder (a checkpoint, a dataset, an
export) subclass OSError, as a missing file does.
"""

import os


class OISError(Exception):
  """Base class for user-facing errors of ois-jax."""


class CheckpointError(OISError, OSError):
  """A checkpoint is missing, corrupt, of another variant, or has wrong keys/shapes."""


class ImageError(OISError, ValueError):
  """An image file cannot be read or decoded, or an array is not an image."""


class ClickError(OISError, ValueError):
  """Clicks are out of the image, too many, or missing."""


class ConfigError(OISError, ValueError):
  """A config file, key or value is unusable, or cannot run on this machine (e.g. cuDNN attention
  on a CPU)."""


class DataError(OISError, OSError):
  """A dataset folder or sample, or a results file (metrics.json), is unusable."""


class DistributedError(OISError, ValueError):
  """The multi-process setup (coordinator address, process count or id) is invalid or unreachable."""


class ExportError(OISError, OSError):
  """An export folder is missing, incomplete, already taken, or does not match its manifest."""


def path_argument(value, what: str, error: type = OISError) -> str:
  """`os.fspath(value)`, or `error` naming `what` when value is not a path (None, a number)."""
  try:
    return os.fspath(value)
  except TypeError:
    raise error(f"{what} must be a path (str or os.PathLike), got {type(value).__name__}") from None


def first_line(e: BaseException, limit: int = 300) -> str:
  """The first line of an exception's message (at most `limit` characters): what a one-line
  error quotes of a library's exception."""
  lines = str(e).strip().splitlines()
  return lines[0][:limit] if lines else ""
