"""Helpers shared by the export tests (tests/export/conftest.py puts this folder on sys.path)."""

import importlib.util
import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "onnx_segment.py")
TOLERANCE = 1e-4  # max |export - JAX| <= TOLERANCE x max |JAX|, per output


def max_rel_diff(a, b) -> float:
  """max |a - b| / max |b| in float64."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape, (a.shape, b.shape)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def random_params(model, seed: int = 0):
  """Random OIS parameters drawn in NumPy (no init compile): kernels ~ N(0, 1/fan_in), so
  activations keep their scale through the ViT-S layers; the rest ~ N(0, 0.1) around 0 or 1."""
  import jax

  from ois_jax.models import ois
  shapes = ois.param_shapes(model)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name, shape = str(getattr(path[-1], "key", path[-1])), leaf.shape
    if name == "kernel":
      return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))).astype(np.float32)
    if name in ("scale", "gamma"):
      return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def scene_clicks():
  """Clicks on the 321 x 481 test scene: (y, x, is_positive) in its pixels."""
  return [(160.0, 240.0, True), (60.0, 400.0, False), (250.0, 100.0, True)]


def require_export_tools():
  """Skip without jax2onnx / onnx / onnxruntime; under CI=true fail instead."""
  missing = [m for m in ("jax2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
  if missing:
    message = f"needs {', '.join(missing)} (pip install -e '.[export]')"
    if os.environ.get("CI", "").lower() == "true":
      pytest.fail(message)
    pytest.skip(message)


def load_example():
  """examples/onnx_segment.py as a module (it is a script, not part of the package)."""
  spec = importlib.util.spec_from_file_location("onnx_segment_example", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
