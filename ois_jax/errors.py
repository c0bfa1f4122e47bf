"""Exceptions with messages meant for users."""


class OISError(Exception):
  """Base class for user-facing errors of ois-jax."""


class CheckpointError(OISError):
  """A checkpoint is missing, corrupt, of another variant, or has wrong keys/shapes."""


class ImageError(OISError):
  """An image file cannot be read or decoded, or an array is not an image."""


class ClickError(OISError):
  """Clicks are out of the image, too many, or missing."""


class DataError(OISError):
  """A dataset folder or sample is unusable."""


class ConfigError(OISError, ValueError):
  """A config value is invalid, or cannot run on this machine (e.g. cuDNN attention on a CPU)."""
