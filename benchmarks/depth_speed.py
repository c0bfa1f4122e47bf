"""DepthAnythingV2 inference speed: JAX/Flax (this package) vs PyTorch (transformers), same weights.

Both run the same random-weight model (a transformers DepthAnythingForDepthEstimation built offline
from a config, converted with ois_jax.convert) on the same normalised input image, batch 1; PyTorch
in fp32, JAX in each `--dtype`. Compilation and warm-up runs are excluded; the frameworks are timed
in alternation so that load changes on a shared machine hit both alike. Prints one JSON object per
(variant, dtype); a JAX dtype other than float32 also reports its difference from JAX float32.

  python benchmarks/depth_speed.py --variant vits vitb --size 518 --repeats 10
  python benchmarks/depth_speed.py --jax-only --variant vitb --dtype float32 bfloat16  # accelerators

`--jax-only` skips PyTorch (NumPy random weights instead of converted ones), for machines where
PyTorch has no kernels for the device.
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
  p.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "bfloat16"],
                 help="JAX compute dtypes (PyTorch always runs float32)")
  p.add_argument("--attention", default="auto", choices=["auto", "xla", "cudnn", "blocked"],
                 help="model.attention (see ois_jax.models.vit.self_attention)")
  p.add_argument("--jax-only", action="store_true", help="time JAX alone, on random NumPy weights")
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


def bench_variant(variant, size, repeats, warmup, dtypes=("float32",), attention="auto", with_torch=True):
  """One result dict per dtype. JAX float32 is always computed (the reference of other dtypes)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from ois_jax.models.depth import DepthAnythingV2

  rng = np.random.default_rng(0)
  x_nhwc = rng.standard_normal((1, size, size, 3)).astype(np.float32)
  x_jax = jnp.asarray(x_nhwc)
  runs = {}  # name -> zero-argument callable returning a host array
  if with_torch:
    import torch

    from ois_jax.convert import from_state_dict
    torch_model = build_torch_model(variant)
    params, _, fmt = from_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})
    pos_embed_mode = "hf" if fmt == "hf" else "original"  # the interpolation of the weights' source
    x_torch = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))

    def run_torch():
      with torch.inference_mode():
        return torch_model(x_torch).predicted_depth.numpy()
    runs["torch"] = run_torch
  else:
    pos_embed_mode = "original"
    params = DepthAnythingV2(variant).random_params(seed=0)
  params = jax.device_put(params)

  compile_s = {}
  for dtype in dict.fromkeys(("float32", *dtypes)):
    model = DepthAnythingV2(variant, pos_embed_mode, dtype=jnp.dtype(dtype), attention=attention)
    run = lambda model=model: model.forward(params, x_jax).block_until_ready()
    start = time.perf_counter()
    run()
    compile_s[dtype] = time.perf_counter() - start
    runs[f"jax_{dtype}"] = run
  outputs = {name: np.asarray(fn(), np.float32) for name, fn in runs.items()}
  for _ in range(warmup):
    for fn in runs.values():
      fn()
  times = {name: [] for name in runs}
  for _ in range(repeats):
    for name, fn in runs.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)

  def rel_diff(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))

  results = []
  for dtype in dtypes:
    name = f"jax_{dtype}"
    jax_med = statistics.median(times[name])
    row = {"variant": variant, "size": size, "batch": 1, "dtype": dtype, "attention": attention,
           "repeats": repeats, "jax_median_s": round(jax_med, 4), "jax_min_s": round(min(times[name]), 4),
           "jax_compile_s": round(compile_s[dtype], 2)}
    if dtype != "float32":
      ref = outputs["jax_float32"]
      row["max_abs_diff_over_max_vs_jax_float32"] = rel_diff(outputs[name], ref)
      row["rel_l2_vs_jax_float32"] = float(np.linalg.norm(outputs[name] - ref) / np.linalg.norm(ref))
    if with_torch:
      torch_med = statistics.median(times["torch"])
      row.update(torch_median_s=round(torch_med, 4), torch_min_s=round(min(times["torch"]), 4),
                 ratio_jax_over_torch=round(jax_med / torch_med, 3),
                 max_abs_diff_over_max=rel_diff(outputs[name], outputs["torch"]),
                 torch_threads=torch.get_num_threads(), torch_version=torch.__version__)
    row.update(jax_device=str(jax.devices()[0]), device_kind=str(jax.devices()[0].device_kind),
               xla_flags=os.environ.get("XLA_FLAGS", ""), jax_version=jax.__version__,
               cpu=platform.processor() or platform.machine(), cores=os.cpu_count())
    results.append(row)
  return results


def main(argv=None):
  args = build_parser().parse_args(argv)
  if args.xla_flags:  # must precede the first jax import
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + args.xla_flags).strip()
  if args.threads and not args.jax_only:
    import torch
    torch.set_num_threads(args.threads)
  results = []
  for variant in args.variant:
    for result in bench_variant(variant, args.size, args.repeats, args.warmup, args.dtype, args.attention,
                                with_torch=not args.jax_only):
      print(json.dumps(result), flush=True)
      results.append(result)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
