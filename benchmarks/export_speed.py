"""onnxruntime (CPU) vs JAX: image-encode and click-decode time of the same exported checkpoint, as JSON.

For each config a random-weight model is exported to ONNX (`ois_jax.export.exporter`, batch
dimension dynamic); then the encoder and the decoder run on the same inputs in onnxruntime and in
JAX (jitted, the model's own CPU attention), each call timed after one warm-up, and the outputs
compared (max |diff| / max |JAX output|). `depth_vits` is the DepthAnythingV2 ViT-S depth export.

  python benchmarks/export_speed.py [--configs tiny,vits_518,depth_vits] [--repeats 5]
      [--batches 1,2] [--threads N] [--out f.json]
"""

import argparse
import json
import os
import platform
import tempfile
import time

import jax
import numpy as np

from ois_jax.export import exporter, onnx_backend
from _output import emit  # benchmarks/_output.py (scripts run from this folder)


def _median_time(fn, repeats):
  fn()  # warm-up (compilation / session initialisation)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def source_for(name):
  if name == "depth_vits":
    from ois_jax.models.depth import DepthAnythingV2, DepthConfig
    model = DepthAnythingV2("vits")
    return exporter.depth_source(model, model.random_params(0), DepthConfig("vits"), {"benchmark": name})
  import importlib

  from ois_jax.models import ois
  module = {"tiny": "ois_tiny", "vits_518": "ois_vits_518"}[name]
  config = importlib.import_module(f"ois_jax.configs.{module}").get_config()
  model = ois.build_model(config.model)
  shapes = ois.param_shapes(model)
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: (rng.standard_normal(s.shape) / np.sqrt(max(1, np.prod(s.shape[:-1]))))
                        .astype(np.float32), shapes)
  return exporter.ois_source(model, params, {"model": config.model.to_dict()}, {"benchmark": name})


def bench(name, batches, repeats, threads, folder):
  source = source_for(name)
  start = time.perf_counter()
  manifest = exporter.export(source, "onnx", os.path.join(folder, name), verify=False)
  export_s = time.perf_counter() - start
  sessions = {g: onnx_backend.Session(os.path.join(folder, name), g, e, threads)
              for g, e in manifest["artifacts"].items()}
  rows = []
  for batch in batches:
    inputs = exporter.sample_inputs(source, batch)
    for graph in source.graphs:
      args = inputs[graph.name]
      ort_s = _median_time(lambda: sessions[graph.name](*args), repeats)
      jax_s = _median_time(lambda: source.jitted[graph.name](source.params, *args), repeats)
      diff = exporter.compare(graph.name, graph, sessions[graph.name](*args),
                              exporter.reference(source, graph.name, args))
      worst = max(r["max_abs_diff"] / max(r["output_max"], 1e-30) for r in diff.values())
      rows.append({"graph": graph.name, "batch": batch, "onnxruntime_ms": 1e3 * ort_s, "jax_ms": 1e3 * jax_s,
                   "max_rel_diff": worst})
      print(json.dumps({"config": name, **rows[-1]}), flush=True)
  sizes = {g: os.path.getsize(os.path.join(folder, name, e["file"])) / 1e6
           for g, e in manifest["artifacts"].items()}
  return {"config": name, "export_s": export_s, "artifact_mb": sizes, "runs": rows}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--configs", default="tiny,vits_518,depth_vits")
  parser.add_argument("--batches", default="1,2")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
  parser.add_argument("--out", help="also write the JSON here")
  args = parser.parse_args(argv)
  import onnxruntime
  results = {"machine": platform.machine(), "cpus": os.cpu_count(), "jax": jax.__version__,
             "onnxruntime": onnxruntime.__version__, "load_avg_1min": os.getloadavg()[0], "results": []}
  batches = [int(b) for b in args.batches.split(",")]
  with tempfile.TemporaryDirectory() as folder:
    for name in args.configs.split(","):
      results["results"].append(bench(name, batches, args.repeats, args.threads, folder))
  results["load_avg_1min_end"] = os.getloadavg()[0]
  emit(results, args.out)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
