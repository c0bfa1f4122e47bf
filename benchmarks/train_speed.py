"""Training speed (steps/s, images/s) of the real train step on synthetic batches, as JSON.

  python benchmarks/train_speed.py --configs ois_tiny ois_vits_518 --steps 5
  python benchmarks/train_speed.py --configs ois_vitb_1024 --dtype bfloat16 --peak-tflops 989  # H100
  python benchmarks/train_speed.py --configs ois_vitb_1024 --dtype bfloat16 --peak-tflops auto --out t.json
Compile time is reported separately and excluded from the rates. FLOPs per step come from XLA's
cost analysis of the compiled step (so they include the no-gradient iterative rounds XLA sees in
the loop body once); MFU = achieved FLOP/s / --peak-tflops ("auto": the device's dense bf16 peak
from PEAK_BF16_TFLOPS, for bfloat16 runs). Peak memory where the backend reports it.
"""

import argparse
import time

import jax
import numpy as np

from ois_jax.training import sharding, train_step as ts
from ois_jax.config import load_config
from _output import emit  # benchmarks/_output.py (scripts run from this folder)


# Dense bfloat16 peak TFLOP/s by device kind (vendor data sheets, no sparsity), for --peak-tflops auto.
# Checked in this order, so the more specific names come first.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H200", 989.0), ("H100", 989.0), ("A100", 312.0),
                    ("L4", 121.0), ("TPU v4", 275.0), ("TPU v5 lite", 197.0), ("TPU v5e", 197.0),
                    ("TPU v5p", 459.0), ("TPU v6", 918.0))


def peak_tflops_for(device_kind: str) -> float | None:
  """The dense bf16 peak of a device kind, or None when it is not in PEAK_BF16_TFLOPS."""
  for name, tflops in PEAK_BF16_TFLOPS:
    if name.lower() in device_kind.lower():
      return tflops
  return None


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
            peak_tflops: float | str | None = None, attention: str | None = None,
            input_size: int | None = None) -> dict:
  config = load_config(name)
  if batch_size:
    config.data.batch_size = batch_size
  if dtype:
    config.model.dtype = dtype
  if attention:
    config.model.attention = attention
  if input_size:
    config.model.input_size = input_size
  if peak_tflops == "auto":
    peak_tflops = peak_tflops_for(jax.devices()[0].device_kind) if config.model.dtype == "bfloat16" else None
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
  memory = compiled.memory_analysis()
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
          "attention": str(config.model.attention),
          "steps": steps, "steps_per_s": steps / seconds,
          "images_per_s": steps * config.data.batch_size / seconds,
          "init_s": init_s, "first_step_s": compile_s, "flops_per_step": flops,
          "achieved_tflops": achieved / 1e12,
          "mfu": achieved / (peak_tflops * 1e12) if peak_tflops else None, "peak_tflops": peak_tflops,
          "peak_memory_gib": stats["peak_bytes_in_use"] / 2 ** 30 if "peak_bytes_in_use" in stats
                             else None,
          "compiled_temp_gib": memory.temp_size_in_bytes / 2 ** 30 if memory else None,
          "device": str(jax.devices()[0].device_kind), "num_devices": jax.device_count(),
          "note": "iterative rounds are random per step (0-3); rates average over them"}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--configs", nargs="+", default=["ois_tiny", "ois_vits_518"])
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--batch-size", type=int, default=None)
  parser.add_argument("--dtype", default=None, help="model compute dtype (e.g. bfloat16)")
  parser.add_argument("--peak-tflops", default=None,
                      help="device peak TFLOP/s for MFU, or 'auto' (bf16 peak of known devices)")
  parser.add_argument("--attention", default=None, help="model.attention override")
  parser.add_argument("--input-size", type=int, default=None, help="model.input_size override")
  parser.add_argument("--out", default=None, help="also write the JSON here")
  args = parser.parse_args()
  peak = args.peak_tflops if args.peak_tflops in (None, "auto") else float(args.peak_tflops)
  emit([measure(n, args.steps, args.batch_size, args.dtype, peak, args.attention, args.input_size)
        for n in args.configs], args.out)


if __name__ == "__main__":
  main()
