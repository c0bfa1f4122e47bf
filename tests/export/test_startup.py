"""Start-up: the persistent compilation cache (folder, variable, flag, messages) and no
per-image-size recompile in the Predictor."""

import logging
import os
import subprocess
import sys

import numpy as np

from ois_jax import compilation_cache

CLI = "import sys; from ois_jax.cli import main; sys.exit(main(sys.argv[1:]))"


def test_cache_folder_default_variable_and_off(monkeypatch, tmp_path):
  monkeypatch.delenv(compilation_cache.ENV_VAR, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compilation_cache.resolve() == str(tmp_path / "xdg" / "ois-jax" / "xla")
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert compilation_cache.resolve() == os.path.join(os.path.expanduser("~"), ".cache", "ois-jax", "xla")
  monkeypatch.setenv(compilation_cache.ENV_VAR, str(tmp_path / "moved"))
  assert compilation_cache.resolve() == str(tmp_path / "moved")
  for off in ("off", "0", "none", ""):
    monkeypatch.setenv(compilation_cache.ENV_VAR, off)
    assert compilation_cache.resolve() is None
  assert compilation_cache.resolve("off") is None  # the flag's value wins over the variable
  assert compilation_cache.resolve(str(tmp_path / "flag")) == str(tmp_path / "flag")


def _segment(checkpoint, image, env, *cache_args):
  cmd = [sys.executable, "-c", CLI, *cache_args, "segment", image, "--checkpoint", checkpoint,
         "--click", "160,240,+", "--out", os.path.join(env["TMP_OUT"], "mask.png"), "--overwrite"]
  result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stderr


class _Records(logging.Handler):
  def __init__(self):
    super().__init__(logging.WARNING)
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


def test_read_only_cache_folder_turns_the_cache_off_with_one_warning(monkeypatch, tmp_path):
  folder = tmp_path / "read_only"
  folder.mkdir()
  real_access = os.access
  monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(folder) else real_access(p, mode))
  before = compilation_cache.current_dir()
  # A handler on the module's own logger: an in-process CLI test earlier in the session stops
  # `ois_jax` records from propagating to the root logger, where pytest's caplog listens.
  records = _Records()
  compilation_cache.log.addHandler(records)
  try:
    assert compilation_cache.enable(str(folder), force=True) is None
    assert records.messages == [f"compilation cache off: {folder} is not writable"]
    assert compilation_cache.current_dir() is None  # not "kept in the compilation cache"
  finally:
    compilation_cache.log.removeHandler(records)
    monkeypatch.undo()
    compilation_cache.enable(before or "off", force=True)


def test_segment_cold_then_warm_and_off(tiny_checkpoint, scene_image, tmp_path):
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
  env.pop(compilation_cache.ENV_VAR, None)
  env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), TMP_OUT=str(tmp_path))
  folder = tmp_path / "cache"
  cold = _segment(tiny_checkpoint, scene_image, env, "--compilation-cache", str(folder))
  assert "compiling the image encoder for 112x112 model inputs, first use" in cold
  assert "the click decoder for 112x112 model inputs compiled in" in cold
  assert any(name.startswith("jit_encode_image") for name in os.listdir(folder))
  # Warm: the same folder through the environment variable instead of the flag.
  warm = _segment(tiny_checkpoint, scene_image, {**env, compilation_cache.ENV_VAR: str(folder)})
  assert warm.count("loaded from the compilation cache") == 2, warm
  off = _segment(tiny_checkpoint, scene_image, env, "--no-compilation-cache")
  assert "the compilation cache is off" in off and "loaded from" not in off
  assert not (tmp_path / "xdg").exists()  # nothing was written to the default folder


def test_predictor_compiles_once_for_every_image_size():
  import ois_testlib as T

  from ois_jax import Predictor
  from ois_jax.configs import ois_tiny
  _, params = T.full()
  predictor = Predictor.from_config(ois_tiny.get_config(), params=params)
  rng = np.random.default_rng(0)
  sizes = [(70, 130), (321, 481), (481, 321), (33, 33)]
  shapes, compiled = [], []
  for h, w in sizes:
    predictor.set_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    prob = predictor.predict([(h // 2, w // 2, True)])
    prob = predictor.predict([(h // 2, w // 2, True), (1, 1, False)], prev_mask=prob)
    shapes.append(prob.shape)
    compiled.append((predictor._encode._cache_size(), predictor._predict._cache_size()))
  assert shapes == sizes
  assert compiled == compiled[:1] * len(sizes)  # nothing compiled after the first image size


def test_host_resize_equals_the_transform_matrices():
  """The Predictor's two-tap resize is `Mh @ x @ Mw.T` of ois_jax.transforms, 1-pixel sides included."""
  from ois_jax import transforms
  from ois_jax.predictor import _Taps
  rng = np.random.default_rng(0)
  for hw in [(321, 481), (481, 321), (1, 7), (7, 1), (1, 1), (112, 112), (600, 450)]:
    tf = transforms.make_transform(hw, 112)
    logits = rng.normal(size=(112, 112)).astype(np.float32)
    prev = rng.uniform(size=hw).astype(np.float32)
    mh, mw = (_Taps(m) for m in tf.resize_back_matrices())
    ph, pw = (_Taps(m) for m in tf.to_model_matrices())
    np.testing.assert_allclose(mw.apply(mh.apply(logits, 0), 1), transforms.postprocess(logits, tf),
                               atol=1e-6)
    np.testing.assert_allclose(pw.apply(ph.apply(prev, 0), 1), transforms.map_to_model(prev, tf), atol=1e-6)
