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


class ExportError(OISError):
  """An export folder is missing, incomplete, already taken, or does not match its manifest."""
