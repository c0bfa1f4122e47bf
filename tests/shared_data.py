"""Where the tests find the benchmark data: `$OIS_DATA_ROOT`, which tests/conftest.py sets to
`../shared/data` beside the repository when it is unset (the test configuration's data root).

`require("GrabCut")` returns the folder, or skips the test with the reason when it is missing;
under `CI=true` a missing folder fails the test instead, so CI never passes by skipping.
"""

import os

import numpy as np
import pytest
from PIL import Image

from ois_jax.data_pipelines import DATA_ROOT_ENV, default_data_root


def require(name: str) -> str:
  path = default_data_root() / name  # set by conftest.py
  if not path.is_dir():
    message = (f"needs the {name} benchmark folder at {path} (set ${DATA_ROOT_ENV} to the folder "
               f"that holds {name}/)")
    if os.environ.get("CI", "").lower() == "true":
      pytest.fail(message)
    pytest.skip(message)
  return str(path)


def write_image(path, rng: np.random.Generator, hw=(12, 16), fmt=None) -> np.ndarray:
  """Writes a random RGB image (a dataset folder's file in a test); returns its (H, W, 3) pixels."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = rng.integers(0, 256, size=tuple(hw) + (3,), dtype=np.uint8)
  Image.fromarray(pixels).save(path, format=fmt)
  return pixels
