"""DepthAnythingV2 inference speed: JAX/Flax (this package) vs PyTorch (transformers), same weights.

Both run the same random-weight model (a transformers DepthAnythingForDepthEstimation built offline
from a config, converted with ois_jax.convert) on the same normalised input image, fp32, batch 1.
Compilation and warm-up runs are excluded; the two frameworks are timed in alternation so that
load changes on a shared machine hit both alike. Prints one JSON object per variant.

  python benchmarks/depth_speed.py --variant vits vitb --size 518 --repeats 10
"""

import argparse
import json
import os
import platform
import statistics
import time


def build_parser():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--variant", nargs="+", default=["vits", "vitb"], choices=["vits", "vitb", "vitl"])
  p.add_argument("--size", type=int, default=518, help="square input side (multiple of 14)")
  p.add_argument("--repeats", type=int, default=10, help="timed runs per framework")
  p.add_argument("--warmup", type=int, default=2, help="untimed runs per framework after compiling")
  p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all cores)")
  p.add_argument("--xla-flags", default="", help="extra XLA_FLAGS for the JAX run (set before jax "
                 "is imported), e.g. '--xla_cpu_use_xnnpack=true'")
  p.add_argument("--out", default=None, help="also write the JSON list here")
  return p


HF_SIZES = {  # variant -> (hidden, layers, heads, out_indices, neck_hidden_sizes, fusion_hidden_size)
    "vits": (384, 12, 6, [3, 6, 9, 12], [48, 96, 192, 384], 64),
    "vitb": (768, 12, 12, [3, 6, 9, 12], [96, 192, 384, 768], 128),
    "vitl": (1024, 24, 16, [5, 12, 18, 24], [256, 512, 1024, 1024], 256),
}


def build_torch_model(variant, seed=0):
  import torch
  import transformers
  hidden, layers, heads, out_indices, neck, fusion = HF_SIZES[variant]
  config = transformers.DepthAnythingConfig(
      backbone_config=transformers.Dinov2Config(
          hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, image_size=518,
          patch_size=14, out_indices=out_indices, apply_layernorm=True, reshape_hidden_states=False),
      reassemble_hidden_size=hidden, neck_hidden_sizes=neck, fusion_hidden_size=fusion,
      depth_estimation_type="relative")
  torch.manual_seed(seed)
  return transformers.DepthAnythingForDepthEstimation(config).eval()


def bench_variant(variant, size, repeats, warmup):
  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch

  from ois_jax.convert import from_state_dict
  from ois_jax.models.depth import DepthAnythingV2

  torch_model = build_torch_model(variant)
  params, _, _ = from_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})
  params = jax.device_put(params)
  model = DepthAnythingV2(variant)

  rng = np.random.default_rng(0)
  x_nhwc = rng.standard_normal((1, size, size, 3)).astype(np.float32)
  x_torch = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
  x_jax = jnp.asarray(x_nhwc)

  def run_torch():
    with torch.inference_mode():
      return torch_model(x_torch).predicted_depth

  def run_jax():
    return model.forward(params, x_jax).block_until_ready()

  start = time.perf_counter()
  jax_out = run_jax()
  compile_s = time.perf_counter() - start
  torch_out = run_torch()
  for _ in range(warmup):
    run_torch()
    run_jax()
  times = {"torch": [], "jax": []}
  for _ in range(repeats):
    for name, fn in (("torch", run_torch), ("jax", run_jax)):
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  torch_med, jax_med = statistics.median(times["torch"]), statistics.median(times["jax"])
  ref = torch_out.numpy()
  return {
      "variant": variant, "size": size, "batch": 1, "dtype": "float32", "repeats": repeats,
      "torch_median_s": round(torch_med, 4), "jax_median_s": round(jax_med, 4),
      "ratio_jax_over_torch": round(jax_med / torch_med, 3),
      "torch_min_s": round(min(times["torch"]), 4), "jax_min_s": round(min(times["jax"]), 4),
      "jax_compile_s": round(compile_s, 2),
      "max_abs_diff_over_max": float(np.abs(np.asarray(jax_out) - ref).max() / max(np.abs(ref).max(), 1e-30)),
      "torch_threads": torch.get_num_threads(), "jax_device": str(jax.devices()[0]),
      "xla_flags": os.environ.get("XLA_FLAGS", ""), "torch_version": torch.__version__,
      "jax_version": jax.__version__,
      "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
  }


def main(argv=None):
  args = build_parser().parse_args(argv)
  if args.xla_flags:  # must precede the first jax import
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + args.xla_flags).strip()
  import torch
  if args.threads:
    torch.set_num_threads(args.threads)
  results = []
  for variant in args.variant:
    result = bench_variant(variant, args.size, args.repeats, args.warmup)
    print(json.dumps(result), flush=True)
    results.append(result)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
