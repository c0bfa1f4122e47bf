"""`export(...)`: a checkpoint -> an export folder (artifacts + manifest.json), checked against JAX.

The folder is written into a temporary sibling and renamed into place once complete and
verified, so a failed export never leaves a half-written folder; an existing export is replaced
only with `overwrite=True`, and a non-empty folder that is not an export never.

The manifest's processing sections say how to feed an OIS export (what `Predictor` does):
  preprocessing   RGB uint8 (H, W, 3); scale = input_size / max(H, W); resize to
                  (round(H * scale), round(W * scale)) (Python's round, halves to even) with
                  OpenCV's INTER_LINEAR on uint8 (half-pixel centres, edge clamped, 11-bit fixed
                  point); x = (pixel / 255 - mean) / std in float32; zero-pad bottom and right to
                  (input_size, input_size)
  clicks          (y, x) original pixels -> (y + 0.5) * scale - 0.5 (float32); positive clicks
                  fill slots [0, num_positive) in click order, negative clicks the next
                  num_negative slots; click_valid marks the filled slots
  postprocessing  logits -> crop to the resized (h', w') -> bilinear to (H, W) with half-pixel
                  centres (align_corners=False) -> sigmoid -> mask = prob > threshold; the next
                  round's prev_mask is that probability map taken back to model space with the
                  same bilinear rule (zero padding), and has_prev is True from the second round
"""

import dataclasses
import logging
import os
import time

import jax
import numpy as np

import ois_jax
from ois_jax import compilation_cache, outputs, transforms
from ois_jax.configs import common
from ois_jax.errors import CheckpointError, ExportError
from ois_jax.export import graphs as G
from ois_jax.export import manifest as mf

FORMATS = ("onnx", "jax")
# ONNX vs JAX in float32: max |diff| <= RTOL * max |JAX output|, per output.
RTOL = 1e-4
VERIFY_BATCHES = (1, 2)

log = logging.getLogger("ois_jax.export")


# --- sources ---------------------------------------------------------------------------------
class Source:
  """What is exported: the graphs, their params, and the manifest sections that describe them.

  make_graphs(attention) builds the graphs with the encoder's self-attention implementation
  `attention` (None: the model's own); a backend that needs another (ONNX: the plain "xla"
  formula) gets graphs rebuilt with it, while the reference stays the model as configured.
  """

  def __init__(self, kind, make_graphs, params, sections, described):
    self.kind, self.make_graphs, self.params = kind, make_graphs, params
    self.graphs = make_graphs(None)
    self.sections, self.described = sections, described
    self.jitted = {g.name: jax.jit(g.fn) for g in self.graphs}  # the JAX reference of each graph

  def graphs_for(self, backend_module) -> tuple:
    attention = getattr(backend_module, "ATTENTION", None)
    return self.make_graphs(attention) if attention else self.graphs


def ois_source(model, params, config: dict, described: dict) -> Source:
  c = model.config
  # A checkpoint without an eval section (an older one) gets the schema's default threshold.
  threshold = float((config.get("eval") or {}).get("threshold", common.base_config().eval.threshold))
  sections = {
      "preprocessing": {
          "input_size": c.input_size, "layout": "NHWC", "channels": "RGB",
          "resize": "longest_side", "interpolation": "opencv_inter_linear_uint8",
          "rounding": "python_round", "pixel_scale": 1 / 255,
          "mean": [float(v) for v in transforms.MEAN], "std": [float(v) for v in transforms.STD],
          "pad": "bottom_right", "pad_value": 0.0,
          "external_depth": c.depth_source == "external"},
      "clicks": {"num_positive": c.num_positive_slots, "num_negative": c.num_negative_slots,
                 "coords": "yx_model_pixels", "coord_rule": "(original + 0.5) * scale - 0.5",
                 "slot_order": "positive_then_negative"},
      "postprocessing": {"output": "logits", "crop": "resized", "resize_back": "bilinear_half_pixel",
                         "activation": "sigmoid", "threshold": threshold,
                         "prev_mask": "probabilities_to_model_space_bilinear_half_pixel"},
  }
  def make_graphs(attention):
    built = model if attention is None else model.clone(
        config=dataclasses.replace(model.config, attention=attention))
    return G.ois_graphs(built, params)

  return Source("ois", make_graphs, params, sections, described)


def depth_source(model, params, depth_config, described: dict, input_hw=None) -> Source:
  from ois_jax.models import depth as depth_lib
  input_hw = tuple(input_hw or (depth_config.input_size, depth_config.input_size))
  if any(d < 14 or d % 14 for d in input_hw):
    raise ExportError(f"--input-hw {input_hw[0]}x{input_hw[1]}: both sides must be multiples of 14")
  sections = {
      "preprocessing": {
          "input_hw": list(input_hw), "layout": "NHWC", "channels": "RGB", "resize": "exact",
          "interpolation": "opencv_inter_cubic_float64", "pixel_scale": 1 / 255,
          "mean": list(depth_lib.MEAN), "std": list(depth_lib.STD)},
      "postprocessing": {"output": "relative_inverse_depth",
                         "resize_back": "bilinear_align_corners"},
  }
  def make_graphs(attention):
    built = model if attention is None else model.clone(attention=attention)
    return (G.depth_graph(built, params, input_hw),)

  return Source("depth_anything_v2", make_graphs, params, sections, described)


def load_source(checkpoint: str | None = None, model_name: str | None = None,
                input_hw=None) -> Source:
  """From a checkpoint folder (OIS or converted DepthAnythingV2) or a bundled model name."""
  from ois_jax.checkpoint import stored_config
  from ois_jax.predictor import Predictor

  if model_name:
    predictor = Predictor.from_pretrained(model_name)
    config = _plain(predictor.config)
    return ois_source(predictor.model, predictor.params, config,
                      {"model": model_name, "config": config})
  if not checkpoint:
    raise ExportError("give --checkpoint DIR or --model NAME")
  try:
    config = stored_config(checkpoint)
  except CheckpointError:
    # Not a weights folder; Predictor.from_checkpoint may still know it (e.g. a training
    # workdir), and otherwise raises the clear error.
    predictor = Predictor.from_checkpoint(checkpoint)
    config = _plain(predictor.config)
    return ois_source(predictor.model, predictor.params, config,
                      {"checkpoint": os.path.abspath(checkpoint), "config": config})
  described = {"checkpoint": os.path.abspath(checkpoint), "config": config}
  if config.get("model") == "depth_anything_v2":
    from ois_jax.models.depth import load_depth_model
    model, depth_config, params = load_depth_model(checkpoint)
    return depth_source(model, params, depth_config, described, input_hw)
  if not isinstance(config.get("model"), dict):
    raise CheckpointError(f"{checkpoint}: its config names model {config.get('model')!r}, which "
                          "is neither an OIS model nor depth_anything_v2")
  if input_hw:
    raise ExportError("--input-hw applies to DepthAnythingV2 checkpoints; an OIS export runs at "
                      "the model's input size")
  predictor = Predictor.from_checkpoint(checkpoint)
  return ois_source(predictor.model, predictor.params, config, described)


def _plain(config) -> dict:
  if config is None:
    return {}
  config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return config if "model" in config else {"model": config}


# --- writing ------------------------------------------------------------------------------------
def backend(fmt: str):
  if fmt == "onnx":
    from ois_jax.export import onnx_backend
    onnx_backend.require()
    return onnx_backend
  if fmt == "jax":
    from ois_jax.export import jax_backend
    return jax_backend
  raise ExportError(f"--format {fmt!r}: expected one of {FORMATS}")


def export(source: Source, fmt: str, out_dir: str, overwrite: bool = False, verify: bool = True) -> dict:
  """Write `source` as a `fmt` export to `out_dir`; returns the manifest (also in out_dir)."""
  impl = backend(fmt)
  out_dir = os.path.abspath(out_dir)
  check_target(out_dir, overwrite)
  with outputs.staged_folder(out_dir) as staging:
    manifest = {"format": mf.FORMAT_NAME, "version": mf.FORMAT_VERSION, "kind": source.kind,
                "backend": fmt, "batch_dim": mf.BATCH_DIM, "artifacts": {}}
    if fmt == "jax":
      manifest["params"] = impl.save_params(source.params, staging)
    for graph in source.graphs_for(impl):
      log.info("exporting the %s to %s", graph.name, fmt)
      start = time.perf_counter()
      manifest["artifacts"][graph.name] = impl.export(graph, source.params, staging)
      log.info("%s written in %.1f s (%.1f MB)", manifest["artifacts"][graph.name]["file"],
               time.perf_counter() - start, _size_mb(staging, manifest["artifacts"][graph.name]))
    manifest.update(source.sections)
    manifest["source"] = source.described
    manifest["created_by"] = {"ois_jax": ois_jax.__version__, **impl.versions()}
    mf.write(staging, manifest)
    if verify:
      manifest["verification"] = verify_export(staging, source)
      mf.write(staging, manifest)
  return manifest


def _size_mb(directory: str, entry: dict) -> float:
  files = [entry["file"]] + ([entry["external_data"]] if "external_data" in entry else [])
  return sum(os.path.getsize(os.path.join(directory, f)) for f in files) / 1e6


def check_target(out_dir: str, overwrite: bool) -> None:
  """ExportError / OutputError, before any work, unless `out_dir` may receive an export: new, an
  empty folder, or (with `overwrite`) an export holding only the files its manifest lists."""
  outputs.check_folder(out_dir)
  if not os.path.exists(out_dir):
    return
  if mf.is_export(out_dir):
    if not overwrite:
      raise ExportError(f"{out_dir}: already holds an export; pass --overwrite to replace it")
    outputs.check_replaceable(out_dir, mf.listed_files(out_dir), "export", ExportError)
  elif os.listdir(out_dir):
    raise ExportError(f"{out_dir}: folder is not empty and holds no export; refusing to write into it")


# --- verification ---------------------------------------------------------------------------------
def runner(directory: str, manifest: dict):
  """A callable (graph name, *inputs) -> list of outputs for the artifacts in `directory`."""
  if manifest["backend"] == "onnx":
    from ois_jax.export import onnx_backend
    sessions = {name: onnx_backend.Session(directory, name, entry)
                for name, entry in manifest["artifacts"].items()}
    return lambda name, *inputs: sessions[name](*inputs)
  from ois_jax.export.jax_runtime import JaxExport
  exported = JaxExport(directory)
  return lambda name, *inputs: list(exported(name, *inputs).values())


def sample_inputs(source: Source, batch: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
  """Inputs for every graph at `batch`: random images; for the decoder the encoder's own state,
  clicks at random pixels (some slots empty) and a random previous mask."""
  rng = np.random.default_rng(seed)
  inputs = {}
  for graph in source.graphs:
    if graph.name == "decoder":
      continue
    arrays = []
    for t in graph.inputs:
      arrays.append(rng.normal(size=(batch, *t["shape"][1:])).astype(t["dtype"]) if t["name"] == "image"
                    else rng.uniform(size=(batch, *t["shape"][1:])).astype(t["dtype"]))
    inputs[graph.name] = arrays
  if source.kind == "ois":
    encoder, decoder = source.graphs
    state = [np.asarray(x) for x in reference(source, "encoder", inputs["encoder"])]
    size = source.sections["preprocessing"]["input_size"]
    n = source.sections["clicks"]["num_positive"] + source.sections["clicks"]["num_negative"]
    coords = rng.uniform(0, size - 1, (batch, n, 2)).astype(np.float32)
    valid = rng.uniform(size=(batch, n)) < 0.3
    valid[:, 0] = True  # at least one positive click
    prev = rng.uniform(size=(batch, size, size)).astype(np.float32)
    has_prev = np.arange(batch) % 2 == 1  # both rounds when batch > 1
    inputs["decoder"] = state + [coords, valid, prev, has_prev]
  return inputs


def reference(source: Source, name: str, inputs) -> list:
  """Graph `name` run by JAX itself (jit, the model's own attention choice)."""
  return list(source.jitted[name](source.params, *inputs))


def compare(name: str, graph: G.Graph, got, expected) -> dict:
  """{output: {max_abs_diff, output_max, ok}} for one run."""
  report = {}
  for t, a, b in zip(graph.outputs, got, expected):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
      raise ExportError(f"{name}/{t['name']}: shape {a.shape} from the export, {b.shape} from JAX")
    diff, top = float(np.max(np.abs(a - b))), float(np.max(np.abs(b)))
    report[t["name"]] = {"max_abs_diff": diff, "output_max": top, "ok": diff <= RTOL * max(top, 1e-30)}
  return report


def verify_export(directory: str, source: Source, batches=VERIFY_BATCHES) -> dict:
  """Run the written artifacts and JAX on the same inputs at each batch size; raises
  ExportError when an output differs by more than RTOL x its maximum."""
  manifest = mf.read(directory)
  run = runner(directory, manifest)
  report, failures = {}, []
  for batch in batches:
    with compilation_cache.announce(f"the JAX reference at batch {batch}", log):
      inputs = sample_inputs(source, batch)
      expected = {g.name: reference(source, g.name, inputs[g.name]) for g in source.graphs}
    with compilation_cache.announce(f"the exported artifacts at batch {batch}", log):
      got = {g.name: run(g.name, *inputs[g.name]) for g in source.graphs}
    for graph in source.graphs:
      result = compare(graph.name, graph, got[graph.name], expected[graph.name])
      report.setdefault(graph.name, {})[f"batch_{batch}"] = result
      worst = max(result, key=lambda out: result[out]["max_abs_diff"] / max(result[out]["output_max"], 1e-30))
      r = result[worst]
      log.info("%s at batch %d: max |diff| %.2e, %.1e x the output max (worst of %d outputs: %s)",
               graph.name, batch, r["max_abs_diff"], r["max_abs_diff"] / max(r["output_max"], 1e-30),
               len(result), worst)
      failures += [f"{graph.name}/{out} at batch {batch}: max |diff| {r['max_abs_diff']:.3g} > "
                   f"{RTOL:g} x {r['output_max']:.3g}" for out, r in result.items() if not r["ok"]]
  if failures:
    raise ExportError("the export does not reproduce JAX: " + "; ".join(failures)
                      + " (pass --no-verify to keep it anyway)")
  report["tolerance"] = f"max |diff| <= {RTOL:g} x max |JAX output|"
  return report

