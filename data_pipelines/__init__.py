"""Dataset builders (tfds, read from local folders) and training-input pipelines."""

import os
import pathlib

DATA_ROOT_ENV = "OIS_DATA_ROOT"


def default_data_root() -> pathlib.Path | None:
  """The benchmark data root, `$OIS_DATA_ROOT` (a folder holding GrabCut/, Berkeley/, DAVIS345/,
  BSDS500/, ...), or None when it is not set: the library names no data folder of its own."""
  env = os.environ.get(DATA_ROOT_ENV)
  return pathlib.Path(env) if env else None
