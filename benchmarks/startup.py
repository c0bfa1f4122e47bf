"""Start-up of `ois-jax segment` with a cold and a warm compilation cache, as JSON.

For each config a random-weight checkpoint is written to a temporary folder; then
`ois-jax segment` (one click on a 481x321 image) runs as a fresh process, first with an empty
cache folder (cold), then `--warm-runs` times with the filled one (warm), and once with the cache
off. Wall time is the whole process (imports, checkpoint load, compilation or cache load, the
click). Also measures the two ways of keeping the Predictor from recompiling per image size:
  host       the resize back to the image (and the previous mask into model space) as NumPy
             matmuls outside the compiled decoder (what `Predictor` does)
  bucketed   the resize inside the compiled decoder, with the image size padded up to a multiple
             of `--bucket` pixels so that nearby sizes share one program
as the first click on a new image size and the median later click.

  python benchmarks/startup.py [--configs tiny,vits_518] [--warm-runs 3] [--bucket 128] [--out f.json]
"""

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from _output import emit  # benchmarks/_output.py (scripts run from this folder)

CONFIGS = {"tiny": "ois_tiny", "vits_518": "ois_vits_518"}
CLI = "import sys; from ois_jax.cli import main; sys.exit(main(sys.argv[1:]))"


def random_model(name: str):
  """(config, params) with NumPy random weights (no flax init compile; speed does not depend on them)."""
  import importlib

  import jax

  from ois_jax.models import ois
  config = importlib.import_module(f"ois_jax.configs.{CONFIGS[name]}").get_config()
  model = ois.build_model(config.model)
  shapes = ois.param_shapes(model)
  rng = np.random.default_rng(0)
  return config, jax.tree.map(lambda s: rng.normal(0, 0.02, s.shape).astype(np.float32), shapes)


def make_checkpoint(name: str, folder: str) -> str:
  from ois_jax.checkpoint import save_checkpoint
  config, params = random_model(name)
  return save_checkpoint(os.path.join(folder, name), params, config)


def run_segment(checkpoint: str, image: str, folder: str, cache_args: list[str]) -> tuple[float, str]:
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "OIS_JAX_COMPILATION_CACHE"}
  cmd = [sys.executable, "-c", CLI, *cache_args, "segment", image, "--checkpoint", checkpoint,
         "--click", "160,240,+", "--out", os.path.join(folder, "mask.png"), "--overwrite"]
  start = time.perf_counter()
  result = subprocess.run(cmd, capture_output=True, text=True, env=env)
  elapsed = time.perf_counter() - start
  if result.returncode:
    raise RuntimeError(result.stderr[-2000:])
  return elapsed, result.stderr


def startup(name: str, folder: str, image: str, warm_runs: int) -> dict:
  checkpoint = make_checkpoint(name, folder)
  cache = os.path.join(folder, f"cache_{name}")
  cold, cold_log = run_segment(checkpoint, image, folder, ["--compilation-cache", cache])
  warm = [run_segment(checkpoint, image, folder, ["--compilation-cache", cache])[0] for _ in range(warm_runs)]
  off, _ = run_segment(checkpoint, image, folder, ["--no-compilation-cache"])
  size = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache))
  return {"config": name, "cold_s": cold, "warm_s": warm, "warm_s_median": float(np.median(warm)),
          "cache_off_s": off, "cache_mb": size / 1e6, "cold_messages": cold_log.strip().splitlines()}


def resize_strategies(name: str, bucket: int, clicks: int = 5) -> dict:
  """First click on each of three new image sizes, and later clicks, for the two strategies."""
  import jax
  import jax.numpy as jnp

  from ois_jax import Predictor
  config, params = random_model(name)
  predictor = Predictor.from_config(config, params=jax.tree.map(jnp.asarray, params))
  s = config.model.input_size
  sizes = [(321, 481), (300, 450), (480, 640)]
  rng = np.random.default_rng(0)

  @functools.partial(jax.jit, static_argnums=0)
  def bucketed_decode(model, params, state, clicks, prev, has_prev, to_model, back):
    from ois_jax.models import ois
    ph, pw = to_model
    logits = ois.decode(model, params, state, clicks, (ph @ prev @ pw.T)[None], has_prev)[0]
    mh, mw = back
    return jax.nn.sigmoid(mh @ logits @ mw.T)

  def padded(m, rows):  # zero rows (or columns of the transposed maps) up to the bucket
    out = np.zeros((rows, m.shape[1]), np.float32)
    out[:m.shape[0]] = m
    return out

  def predict_bucketed(tf, model_clicks, prev):
    h, w = tf.orig_hw
    bh, bw = -(-h // bucket) * bucket, -(-w // bucket) * bucket
    mh, mw = tf.resize_back_matrices()
    ph, pw = tf.to_model_matrices()
    back = (jnp.asarray(padded(mh, bh)), jnp.asarray(padded(mw, bw)))
    to_model = (jnp.asarray(padded(ph.T, bh).T), jnp.asarray(padded(pw.T, bw).T))
    prev_padded = np.zeros((bh, bw), np.float32)
    prev_padded[:h, :w] = prev
    out = bucketed_decode(predictor.model, predictor.params, predictor._state, model_clicks,
                          jnp.asarray(prev_padded), jnp.asarray([True]), to_model, back)
    return np.asarray(out)[:h, :w]

  results = {"host": {"first_click_s": [], "click_ms": []},
             "bucketed": {"first_click_s": [], "click_ms": [], "bucket": bucket}}
  predictor.set_image(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8))
  predictor.predict([(50, 50, True)])  # compile the size-free decoder once, outside the timings
  for h, w in sizes:
    predictor.set_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    prev = np.zeros((h, w), np.float32)
    for strategy in ("host", "bucketed"):
      times = []
      for k in range(clicks):
        start = time.perf_counter()
        if strategy == "host":
          predictor.predict([(h / 2, w / 2, True)], prev_mask=prev)
        else:
          model_clicks = predictor.model_clicks([(h / 2, w / 2, True)])
          predict_bucketed(predictor._tf, model_clicks, prev)
        times.append(time.perf_counter() - start)
      results[strategy]["first_click_s"].append(times[0])
      results[strategy]["click_ms"].append(1e3 * float(np.median(times[1:])))
  for r in results.values():
    r["first_click_s_mean"] = float(np.mean(r["first_click_s"]))
    r["click_ms_median"] = float(np.median(r["click_ms"]))
  results["image_sizes"] = [f"{w}x{h}" for h, w in sizes]
  results["input_size"] = s
  return results


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--configs", default="tiny,vits_518")
  parser.add_argument("--warm-runs", type=int, default=3)
  parser.add_argument("--bucket", type=int, default=128)
  parser.add_argument("--skip-resize", action="store_true", help="only the start-up runs")
  parser.add_argument("--out", help="also write the JSON here")
  args = parser.parse_args(argv)
  from PIL import Image
  results = {"machine": platform.machine(), "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
             "startup": [], "resize": []}
  with tempfile.TemporaryDirectory() as folder:
    image = os.path.join(folder, "image.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (321, 481, 3), dtype=np.uint8)).save(image)
    for name in args.configs.split(","):
      results["startup"].append(startup(name, folder, image, args.warm_runs))
      print(json.dumps(results["startup"][-1]), flush=True)
      if not args.skip_resize:
        results["resize"].append({"config": name, **resize_strategies(name, args.bucket)})
        print(json.dumps(results["resize"][-1]), flush=True)
  results["load_avg_1min_end"] = os.getloadavg()[0]
  emit(results, args.out)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
