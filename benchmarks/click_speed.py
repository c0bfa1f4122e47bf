"""Image-encode time and per-click decode time of OIS, as JSON.

A click session like the evaluation's: one image encoded once, then >= 20 clicks, each decoded
with all clicks so far and the previous round's probabilities (object-aware attention on). Each
timed call ends with block_until_ready. Parameters are random (NumPy, no flax init compile):
speed does not depend on their values.

  python benchmarks/click_speed.py [--configs tiny,vits_518,vitb_1024] [--clicks 20]
      [--dtype float32 [bfloat16]] [--attention auto|xla|cudnn|blocked] [--repeats 3] [--out speed.json]

With several dtypes, each config is measured once per dtype (one result each).
"""

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.configs import ois_tiny, ois_vitb_1024, ois_vits_518
from ois_jax.models import ois, vit
from ois_jax.models.prompts import Clicks
from _output import emit  # benchmarks/_output.py (scripts run from this folder)

CONFIGS = {"tiny": ois_tiny, "vits_518": ois_vits_518, "vitb_1024": ois_vitb_1024}


def random_params(model, seed=0):
  shapes = ois.param_shapes(model)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.02, s.shape).astype(np.float32)), shapes)


def _timed(fn, *args):
  t = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - t


def bench(name, dtype, num_clicks, repeats, batch=1, attention="auto"):
  cfg = CONFIGS[name].get_config().model
  cfg.dtype = dtype
  cfg.attention = attention
  model = ois.build_model(cfg)
  params = random_params(model)
  s = cfg.input_size
  encode = jax.jit(lambda p, x: ois.encode_image(model, p, x))
  decode = jax.jit(lambda p, st, c, m, h: jax.nn.sigmoid(ois.decode(model, p, st, c, m, h)))
  images = jnp.asarray(np.random.default_rng(1).normal(size=(batch, s, s, 3)).astype(np.float32))

  state, compile_encode = _timed(encode, params, images)
  encode_times = [_timed(encode, params, images)[1] for _ in range(repeats)]

  rng = np.random.default_rng(2)
  points = [(float(rng.uniform(0, s - 1)), float(rng.uniform(0, s - 1)), i % 3 != 1)
            for i in range(num_clicks)]
  prev = jnp.zeros((batch, s, s), jnp.float32)
  has_prev = jnp.zeros((batch,), bool)
  first = Clicks.from_lists([points[:1]] * batch)
  _, compile_decode = _timed(decode, params, state, first, prev, has_prev)
  click_times = []
  for k in range(1, num_clicks + 1):
    clicks = Clicks.from_lists([points[:k]] * batch)
    prev, dt = _timed(decode, params, state, clicks, prev, has_prev)
    has_prev = jnp.ones((batch,), bool)
    click_times.append(dt)
  assert decode._cache_size() == 1, "decode recompiled while clicks were added"
  return {"config": name, "input_size": s, "dtype": dtype, "attention": attention, "batch": batch,
          "encode_s_median": float(np.median(encode_times)),
          "decode_ms_median": 1e3 * float(np.median(click_times)),
          "decode_ms_min": 1e3 * float(np.min(click_times)),
          "clicks": num_clicks, "compile_encode_s": compile_encode, "compile_decode_s": compile_decode}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--configs", default="tiny,vits_518,vitb_1024")
  parser.add_argument("--clicks", type=int, default=20)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
  parser.add_argument("--attention", default="auto", choices=list(vit.ATTENTION_IMPLEMENTATIONS))
  parser.add_argument("--out", help="also write the JSON here")
  args = parser.parse_args(argv)
  results = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
             "machine": platform.machine(), "jax": jax.__version__, "results": []}
  for name in args.configs.split(","):
    for dtype in args.dtype:
      results["results"].append(bench(name, dtype, args.clicks, args.repeats, attention=args.attention))
      print(json.dumps(results["results"][-1]), flush=True)
  emit(results, args.out)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
