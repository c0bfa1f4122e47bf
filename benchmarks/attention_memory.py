"""Compiled memory of the ViT encoder and of the OIS image encode, bounded attention vs the plain
formula, from XLA's memory analysis of the compiled executables: nothing is run (unless --run).

  python benchmarks/attention_memory.py                       # ViT-B at 2044 px (ois_vitb_2048)
  python benchmarks/attention_memory.py --config ois_vitb_1024 --dtype bfloat16 --out mem.json
  python benchmarks/attention_memory.py --run                 # also run the bounded encoder once

`--attention` lists the implementations to compile (default: auto, the bounded choice of
`model.attention`, and xla, the plain formula); `resolved` says what each lowered to on this
backend (blocked loop, cudnn fused attention, or plain). Parameters are abstract
(jax.eval_shape), so even the 22 GB-per-layer plain formula compiles on a small machine.
`--run` executes the encoder with each bounded implementation once on random weights and adds
its wall time and, where the backend reports it, the device's peak memory.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.models import ois, vit
from ois_jax.config import load_config
from _output import emit  # benchmarks/_output.py (scripts run from this folder)


def resolved_kind(hlo_text: str) -> str:
  """What a lowered attention became: the blocked loop, cuDNN's fused kernel, or the plain formula."""
  if "__cudnn$fmha" in hlo_text:  # the custom-call targets of cuDNN's fused attention
    return "cudnn"
  return "blocked" if "while" in hlo_text else "plain"


def _memory(compiled) -> dict:
  m = compiled.memory_analysis()
  fields = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
            "alias_size_in_bytes", "generated_code_size_in_bytes")
  out = {f.replace("_size_in_bytes", "_bytes"): int(getattr(m, f)) for f in fields if hasattr(m, f)}
  out["temp_gib"] = out["temp_bytes"] / 2**30
  return out


def _parts(config, attention: str, batch: int):
  """(name, function, abstract args) for the encoder alone and for OIS.encode_image."""
  cfg = config.model
  cfg.attention = attention
  model = ois.build_model(cfg)
  c = model.config
  s, dtype = c.input_size, jnp.dtype(c.dtype)
  images = jax.ShapeDtypeStruct((batch, s, s, 3), jnp.float32)
  embed_dim, depth, heads, layers = c.encoder_dims
  encoder = vit.DinoVisionTransformer(embed_dim, depth, heads, layers, dtype=dtype, attention=attention)
  encoder_params = jax.eval_shape(encoder.init, jax.random.key(0), jnp.zeros((1, 28, 28, 3)))
  params = ois.param_shapes(model)
  depth_arg = jax.ShapeDtypeStruct((batch, s, s), jnp.float32) if c.depth_source == "external" else None
  return {
      "encoder": (jax.jit(encoder.apply), (encoder_params, images)),
      "encode": (jax.jit(lambda p, x, d: ois.encode_image(model, p, x, d)), (params, images, depth_arg)),
  }, encoder


def _random_like(tree, seed=0):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.02, s.shape).astype(np.float32)), tree)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  p.add_argument("--config", default="ois_vitb_2048", help="a module of ois_jax.configs")
  p.add_argument("--input-size", type=int, default=None, help="override model.input_size")
  p.add_argument("--dtype", default=None, choices=["float32", "bfloat16"])
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--attention", nargs="+", default=["auto", "xla"], choices=vit.ATTENTION_IMPLEMENTATIONS)
  p.add_argument("--parts", nargs="+", default=["encoder", "encode"], choices=["encoder", "encode"])
  p.add_argument("--run", action="store_true", help="also run the encoder once per non-plain implementation")
  p.add_argument("--out", default=None, help="also write the JSON here")
  args = p.parse_args(argv)

  config = load_config(args.config)
  if args.input_size:
    config.model.input_size = args.input_size
  if args.dtype:
    config.model.dtype = args.dtype
  c = ois.OISConfig.from_config(config.model)
  embed_dim, depth, heads, _ = c.encoder_dims
  tokens = c.grid**2 + 1
  result = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
            "jax": jax.__version__, "config": args.config, "input_size": c.input_size,
            "dtype": c.dtype, "batch": args.batch, "tokens": tokens, "embed_dim": embed_dim,
            "depth": depth, "heads": heads,
            "plain_logits_bytes_per_layer": args.batch * heads * tokens * tokens * 4,
            "block_bytes": vit.ATTENTION_BLOCK_BYTES, "results": []}
  for attention in args.attention:
    parts, encoder = _parts(config, attention, args.batch)
    for name in args.parts:
      fn, fn_args = parts[name]
      start = time.perf_counter()
      lowered = fn.lower(*fn_args)
      compiled = lowered.compile()
      row = {"attention": attention, "part": name, "resolved": resolved_kind(lowered.as_text()),
             "compile_s": time.perf_counter() - start, **_memory(compiled)}
      if args.run and name == "encoder" and row["resolved"] != "plain":
        params, images = _random_like(fn_args[0]), jnp.asarray(
            np.random.default_rng(1).normal(size=fn_args[1].shape).astype(np.float32))
        jax.block_until_ready(compiled(params, images))
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, images))
        row["run_s"] = time.perf_counter() - start
        stats = jax.devices()[0].memory_stats() or {}
        row["peak_memory_gib"] = (stats["peak_bytes_in_use"] / 2**30 if "peak_bytes_in_use" in stats
                                  else None)
      result["results"].append(row)
      print(json.dumps(row), flush=True)
  bounded = [r for r in result["results"] if r["part"] == "encoder" and r["resolved"] != "plain"]
  plain = [r for r in result["results"] if r["part"] == "encoder" and r["resolved"] == "plain"]
  if bounded and plain:
    result["encoder_temp_plain_over_bounded"] = plain[0]["temp_bytes"] / bounded[0]["temp_bytes"]
  emit(result, args.out)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
