"""Fixtures of the export tests: a tiny random-weight checkpoint, its ONNX and jax.export folders
(written once per session through `ois-jax export`), a procedural test image, and a Python that
can import NumPy, Pillow and onnxruntime but neither JAX nor ois-jax."""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

RUNTIME_PACKAGES = ("numpy", "pillow", "onnxruntime")


# The test files import export_testlib (beside this file) by name, as the root conftest does
# for the other folders' helpers.
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from export_testlib import require_export_tools  # noqa: E402  (needs the line above)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
  """A random-weight tiny OIS checkpoint (the tiny model shared with the model tests)."""
  import ois_testlib as T

  from ois_jax.checkpoint import save_checkpoint
  from ois_jax.configs import ois_tiny
  _, params = T.full()
  path = tmp_path_factory.mktemp("export") / "tiny_ckpt"
  return save_checkpoint(str(path), params, ois_tiny.get_config())


@pytest.fixture(scope="session")
def scene_image(tmp_path_factory) -> str:
  """A 321 x 481 procedural scene (BSDS500's size) as PNG."""
  from ois_jax.data_pipelines.procedural import ProceduralScenes
  image = ProceduralScenes(4, seed=3, split="val", size=(321, 481))[1]["image"]
  path = tmp_path_factory.mktemp("images") / "scene.png"
  Image.fromarray(image).save(path)
  return str(path)


def _export(checkpoint, fmt, out) -> str:
  from ois_jax.cli import main
  assert main(["export", "--checkpoint", checkpoint, "--format", fmt, "--out", str(out)]) == 0
  return str(out)


@pytest.fixture(scope="session")
def onnx_export(tiny_checkpoint, tmp_path_factory) -> str:
  require_export_tools()
  return _export(tiny_checkpoint, "onnx", tmp_path_factory.mktemp("onnx") / "tiny")


@pytest.fixture(scope="session")
def jax_export(tiny_checkpoint, tmp_path_factory) -> str:
  return _export(tiny_checkpoint, "jax", tmp_path_factory.mktemp("jax") / "tiny")


@pytest.fixture(scope="session")
def no_jax_python(tmp_path_factory):
  """argv prefix of a Python that sees only the standard library and RUNTIME_PACKAGES (with their
  requirements): `python -I -S` plus a folder of links to those packages' installed files."""
  require_export_tools()
  site = tmp_path_factory.mktemp("runtime_site")
  for dist in _with_requirements(RUNTIME_PACKAGES):
    for top in {str(f).split("/")[0] for f in dist.files or ()}:
      source = os.path.join(str(dist.locate_file("")), top)
      if top.endswith(".dist-info") or top.startswith("..") or not os.path.exists(source):
        continue
      if not os.path.exists(site / top):
        os.symlink(source, site / top)
  bootstrap = ("import sys, runpy; sys.path.insert(0, {site!r}); sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')").format(site=str(site))
  argv = [sys.executable, "-I", "-S", "-c", bootstrap]
  check = subprocess.run(
      [sys.executable, "-I", "-S", "-c",
       f"import sys, importlib.util as u; sys.path.insert(0, {str(site)!r}); import numpy, PIL, onnxruntime; "
       "print(u.find_spec('jax'), u.find_spec('ois_jax'), u.find_spec('flax'))"],
      capture_output=True, text=True, check=True)
  assert check.stdout.split() == ["None", "None", "None"], check.stdout
  return argv


def _with_requirements(names):
  """Installed distributions of `names` and, recursively, their unconditional requirements."""
  seen = {}
  todo = list(names)
  while todo:
    name = todo.pop()
    key = name.lower().replace("_", "-")
    if key in seen:
      continue
    dist = seen[key] = importlib.metadata.distribution(name)
    for req in dist.requires or ():
      if "extra ==" not in req:
        todo.append(re.split(r"[ ;<>=!~\[(]", req.strip())[0])
  return list(seen.values())

