"""Dataset builders (tfds, read from local folders) and training-input pipelines."""

import os
import pathlib

DATA_ROOT_ENV = "OIS_DATA_ROOT"


def default_data_root() -> pathlib.Path:
  """The benchmark data root: `$OIS_DATA_ROOT`, else `shared/data` beside the repository.

  A source checkout sits next to `shared/` (`../shared/data` from the repository root), where
  the benchmark folders (GrabCut/, Berkeley/, DAVIS345/, BSDS500/) are read in place.
  """
  env = os.environ.get(DATA_ROOT_ENV)
  if env:
    return pathlib.Path(env)
  repo = pathlib.Path(__file__).resolve().parents[1]
  return repo.parent / "shared" / "data"
