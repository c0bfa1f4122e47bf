"""Where the tests find the benchmark data: `$OIS_DATA_ROOT`, which tests/conftest.py sets to
`../shared/data` beside the repository when it is unset (the test configuration's data root).

`require("GrabCut")` returns the folder, or skips the test with the reason when it is missing;
under `CI=true` a missing folder fails the test instead, so CI never passes by skipping.
"""

import os

import pytest

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
