"""Training speed (steps/s, images/s) of the real train step on synthetic batches, as JSON.

  python benchmarks/train_speed.py --configs ois_tiny ois_vits_518 --steps 5
  python benchmarks/train_speed.py --configs ois_vitb_1024 --dtype bfloat16 --peak-tflops 989  # H100
Compile time is reported separately and excluded from the rates. FLOPs per step come from XLA's
cost analysis of the compiled step (so they include the no-gradient iterative rounds XLA sees in
the loop body once); MFU = achieved FLOP/s / --peak-tflops. Peak memory where the backend reports it.
"""

import argparse
import importlib
import json
import time

import jax
import numpy as np

from ois_jax.training import sharding, train_step as ts


def synthetic_batch(config, rng):
  b, s = int(config.data.batch_size), int(config.model.input_size)
  gt = np.zeros((b, s, s), np.int8)
  gt[:, s // 4: 3 * s // 4, s // 3: 2 * s // 3] = 1
  coords = np.zeros((b, 48, 2), np.float32)
  coords[:, 0] = (s // 2, s // 2)
  valid = np.zeros((b, 48), bool)
  valid[:, 0] = True
  batch = {"image": rng.normal(size=(b, s, s, 3)).astype(np.float32), "gt": gt,
           "click_coords": coords, "click_valid": valid}
  if config.model.depth_source == "external":
    batch["depth"] = rng.random((b, s, s)).astype(np.float32)
  return batch


def measure(name: str, steps: int, batch_size: int | None, dtype: str | None = None,
            peak_tflops: float | None = None) -> dict:
  config = importlib.import_module(f"ois_jax.configs.{name}").get_config()
  if batch_size:
    config.data.batch_size = batch_size
  if dtype:
    config.model.dtype = dtype
  fns = ts.ois_fns()
  mesh = sharding.make_mesh(config)
  model = fns.build_model(config.model)
  t0 = time.perf_counter()
  state, shardings, tx, mask = ts.create_train_state(model, config, fns, mesh, jax.random.key(0))
  jax.block_until_ready(state)
  init_s = time.perf_counter() - t0
  step = ts.jit_train_step(ts.make_train_step(model, config, fns, tx, mask), shardings, mesh)
  batch = sharding.shard_batch(synthetic_batch(config, np.random.default_rng(0)), config, mesh)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch, jax.random.key(1)).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  state, metrics = compiled(state, batch, jax.random.key(1))
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  step = compiled
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch, jax.random.key(1))
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - t0
  stats = jax.devices()[0].memory_stats() or {}
  achieved = flops * steps / seconds
  return {"config": name, "batch_size": int(config.data.batch_size),
          "input_size": int(config.model.input_size), "dtype": str(config.model.dtype),
          "steps": steps, "steps_per_s": steps / seconds,
          "images_per_s": steps * config.data.batch_size / seconds,
          "init_s": init_s, "first_step_s": compile_s, "flops_per_step": flops,
          "achieved_tflops": achieved / 1e12,
          "mfu": achieved / (peak_tflops * 1e12) if peak_tflops else None,
          "peak_memory_gib": stats["peak_bytes_in_use"] / 2 ** 30 if "peak_bytes_in_use" in stats
                             else None,
          "device": str(jax.devices()[0].device_kind), "num_devices": jax.device_count(),
          "note": "iterative rounds are random per step (0-3); rates average over them"}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--configs", nargs="+", default=["ois_tiny", "ois_vits_518"])
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--batch-size", type=int, default=None)
  parser.add_argument("--dtype", default=None, help="model compute dtype (e.g. bfloat16)")
  parser.add_argument("--peak-tflops", type=float, default=None, help="device peak, for MFU")
  args = parser.parse_args()
  print(json.dumps([measure(n, args.steps, args.batch_size, args.dtype, args.peak_tflops)
                    for n in args.configs], indent=1))


if __name__ == "__main__":
  main()
