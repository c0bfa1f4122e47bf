"""The standard click-loop benchmark of a model on a set of samples: `Evaluator` and `evaluate`.

One evaluator serves `ois-jax evaluate`, validation during training, the quickstart and the
scripts. Samples are prepared on the host (resize + pad to the model input, resize-back matrices,
and for models with `depth_source='external'` the sample's depth map in model space), grouped into
batches by canvas bucket (original H, W rounded up to `canvas_multiple`, so one compiled loop
serves many image sizes) and run by one jitted function per (batch, canvas) shape: encode once,
then all clicks under `jax.lax.scan` (simulator.click_loop). Unusable samples (unreadable file,
empty mask, image/mask size mismatch, no depth map for an external-depth model) are skipped with
a reason and never enter the averages.

  result = evaluate(model, params, config, samples)        # stream a dataset once
  evaluator = Evaluator(model, config, samples, cache=True) # fixed samples, many params
  metrics = evaluator(params)                               # e.g. validation during training
"""

import dataclasses
import functools
import math
import time
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.evaluation import metrics, simulator
from ois_jax.models.model_fns import ModelFns, ois_fns


@dataclasses.dataclass
class EvalResult:
  """names (N,), ious (N, K), clicks (N, K, 3) int (y, x, is_positive), metrics dict, skipped."""
  names: list[str]
  ious: np.ndarray
  clicks: np.ndarray
  metrics: dict
  skipped: list[tuple[str, str]]
  seconds: float = 0.0


@dataclasses.dataclass
class Prepared:
  """One sample ready for the loop: model input, ground truth and resize-back data."""
  name: str
  image: np.ndarray        # (S, S, 3) float32 normalised model input
  gt: np.ndarray           # (H, W) int8
  resize_h: np.ndarray     # (H, S) float32
  resize_w: np.ndarray     # (W, S) float32
  scale: float
  to_model_h: np.ndarray   # (S, H) float32
  to_model_w: np.ndarray   # (S, W) float32
  depth: np.ndarray | None = None  # (S, S) float32 model-space depth (depth_source='external')


def check_sample(sample: dict) -> tuple[np.ndarray, np.ndarray]:
  """Validate one dataset sample; returns (image uint8 (H, W, 3), gt int8 (H, W)) or raises DataError."""
  from ois_jax.errors import DataError
  image, gt = np.asarray(sample["image"]), np.asarray(sample["gt"])
  if image.ndim != 3 or image.shape[-1] != 3:
    raise DataError(f"image has shape {image.shape}, expected (H, W, 3)")
  if gt.ndim != 2:
    raise DataError(f"mask has shape {gt.shape}, expected (H, W)")
  if image.shape[:2] != gt.shape:
    raise DataError(f"size mismatch: image {image.shape[0]}x{image.shape[1]} vs mask "
                    f"{gt.shape[0]}x{gt.shape[1]}")
  if not np.any(gt == 1):
    raise DataError("empty ground-truth mask (no object pixel)")
  return image, gt.astype(np.int8)


def prepare(sample: dict, input_size: int, with_depth: bool = False) -> Prepared:
  """Host-side preprocessing of one validated sample (raises OISError when unusable).

  with_depth: the sample's 'depth' (H, W) is mapped into model space like the image (bilinear,
  zero padding: `transforms.map_to_model`, the same mapping as `Predictor.set_image`).
  """
  from ois_jax import transforms
  from ois_jax.errors import DataError
  image, gt = check_sample(sample)
  x, tf = transforms.preprocess(image, input_size)
  mh, mw = tf.resize_back_matrices()
  ph, pw = tf.to_model_matrices()
  f32 = lambda a: np.asarray(a, np.float32)
  depth = None
  if with_depth:
    if sample.get("depth") is None:
      raise DataError("no depth map (the model takes depth_source='external')")
    depth = np.asarray(sample["depth"], np.float32)
    if depth.shape != gt.shape:
      raise DataError(f"depth map has shape {depth.shape}, expected the image's {gt.shape}")
    depth = transforms.map_to_model(depth, tf)
  return Prepared(str(sample.get("name", "")), f32(x), gt, f32(mh), f32(mw), float(tf.scale),
                  f32(ph), f32(pw), depth)


def canvas_for(hw: tuple[int, int], multiple: int) -> tuple[int, int]:
  return tuple(int(math.ceil(v / multiple) * multiple) for v in hw)


def make_batch(items: Sequence[Prepared], batch_size: int, canvas: tuple[int, int],
               input_size: int) -> tuple[np.ndarray, simulator.LoopBatch]:
  """Stack prepared samples onto a (batch_size, Hc, Wc) canvas; missing rows are dummies."""
  hc, wc = canvas
  s = input_size
  images = np.zeros((batch_size, s, s, 3), np.float32)
  gt = np.zeros((batch_size, hc, wc), np.int8)
  valid = np.zeros((batch_size, hc, wc), bool)
  resize_h = np.zeros((batch_size, hc, s), np.float32)
  resize_w = np.zeros((batch_size, wc, s), np.float32)
  scale = np.ones((batch_size,), np.float32)
  to_model_h = np.zeros((batch_size, s, hc), np.float32)
  to_model_w = np.zeros((batch_size, s, wc), np.float32)
  for i, p in enumerate(items):
    h, w = p.gt.shape
    images[i] = p.image
    gt[i, :h, :w] = p.gt
    valid[i, :h, :w] = True
    resize_h[i, :h] = p.resize_h
    resize_w[i, :w] = p.resize_w
    scale[i] = p.scale
    to_model_h[i, :, :h] = p.to_model_h
    to_model_w[i, :, :w] = p.to_model_w
  return images, simulator.LoopBatch(gt, valid, resize_h, resize_w, scale, to_model_h, to_model_w)


def stack_depth(items: Sequence[Prepared], batch_size: int, input_size: int) -> np.ndarray | None:
  """(batch_size, S, S) float32 model-space depth of the items (zeros for dummy rows), or None."""
  if not items or items[0].depth is None:
    return None
  depth = np.zeros((batch_size, input_size, input_size), np.float32)
  depth[:len(items)] = np.stack([p.depth for p in items])
  return depth


class ClickLoopRunner:
  """Compiled click loops, one per (batch, canvas) shape, with compile time kept out of timings.

  fns: the model's functions (`encode_image`, `decode`); the OIS model's by default.
  """

  def __init__(self, model, config, max_clicks: int, threshold: float | None = None,
               fns: ModelFns | None = None):
    self.external_depth = config.model.get("depth_source", "head") == "external"
    fns = fns or ois_fns()
    self.model, self.config = model, config
    encode_fn = fns.encode_image
    self.encode_fn, self.decode_fn = encode_fn, fns.decode
    self.max_clicks = int(max_clicks)
    self.threshold = float(config.eval.threshold if threshold is None else threshold)
    self.input_size = int(config.model.input_size)
    self.num_positive = int(config.model.num_positive_slots)
    self.num_negative = int(config.model.num_negative_slots)
    self._compiled = {}
    self._jitted = jax.jit(self._run)
    # One click at a time (the host loop of evaluation/reference.py): encode, then decode a click.
    self.encode = jax.jit(lambda params, images, depth: encode_fn(model, params, images, depth))
    self.predict = jax.jit(self._predict_impl)

  def empty_clicks(self, batch: int):
    from ois_jax.models.prompts import Clicks
    empty = Clicks.empty(batch, self.num_positive, self.num_negative)
    return jax.tree_util.tree_map(jnp.asarray, empty)

  def _run(self, params, images, batch: simulator.LoopBatch, depth=None) -> simulator.LoopOutput:
    state = self.encode_fn(self.model, params, images, depth)
    decode = lambda st, clicks, prev, has_prev: self.decode_fn(self.model, params, st, clicks, prev,
                                                               has_prev)
    return simulator.click_loop(decode, state, batch, self.empty_clicks(images.shape[0]),
                                self.max_clicks, self.threshold, self.num_positive)

  def _predict_impl(self, params, state, clicks, prev, has_prev, batch):
    logits = self.decode_fn(self.model, params, state, clicks, prev, has_prev)
    return simulator.to_original(logits, batch, self.threshold)

  def compiled(self, params, images, batch, depth=None):
    key = (images.shape, batch.gt.shape, depth is None)
    if key not in self._compiled:
      self._compiled[key] = self._jitted.lower(params, images, batch, depth).compile()
    return self._compiled[key]

  def run(self, params, images, batch, depth=None) -> tuple[simulator.LoopOutput, float]:
    """Run all clicks for one batch; returns (numpy outputs, execution seconds without compile).

    depth: (B, S, S) model-space depth maps for `depth_source='external'` models, else None.
    """
    fn = self.compiled(params, images, batch, depth)
    start = time.perf_counter()
    out = jax.block_until_ready(fn(params, images, batch, depth))
    seconds = time.perf_counter() - start
    return jax.tree_util.tree_map(np.asarray, out), seconds


def _samples_of(samples) -> tuple[Any, list[tuple[str, str]]]:
  """An EvalDataset (has .source / .skipped) or any sequence / iterable of sample dicts."""
  if hasattr(samples, "source"):
    return samples.source, list(getattr(samples, "skipped", []))
  return samples, []


def _iter_samples(source) -> Iterable[tuple[int, Any]]:
  """Yields (index, sample or the exception raised while reading it)."""
  if hasattr(source, "__len__") and hasattr(source, "__getitem__"):
    for i in range(len(source)):
      try:
        yield i, source[i]
      except Exception as e:  # noqa: BLE001 - one bad file must not end the run
        yield i, e
  else:
    for i, sample in enumerate(source):
      yield i, sample


VALIDATION_KEYS = ("NoC85", "NoC90", "NoC95", "mIoU@1", "mIoU@5")


class Evaluator:
  """The standard protocol for one model on a set of samples; `run(params)` for any weights.

  cache=False streams the samples on every run (benchmarks: large datasets, evaluated once);
  cache=True prepares and batches them once, on the first run, and keeps the batches (validation
  during training: a small fixed set evaluated many times, one compile).
  """

  def __init__(self, model, config, samples, *, fns: ModelFns | None = None,
               batch_size: int | None = None, max_clicks: int | None = None,
               canvas_multiple: int = 64, cache: bool = False, progress: bool = False):
    self.batch_size = int(batch_size or config.eval.batch_size)
    self.max_clicks = int(max_clicks or config.eval.max_clicks)
    self.runner = ClickLoopRunner(model, config, self.max_clicks, fns=fns)
    self.prepare_fn = functools.partial(prepare, with_depth=self.runner.external_depth)
    self.canvas_multiple = int(canvas_multiple)
    self.samples = samples
    self.cache = cache
    self.progress = progress
    self._cached = None  # (batches, skipped, total) after the first run when caching

  def _prepared_batches(self, skipped: list, bar=None):
    """Yields (rows [(index, name)], images, depth, LoopBatch) as batches fill; unusable samples
    go to `skipped` as (name, reason)."""
    source, carried = _samples_of(self.samples)
    skipped.extend(carried)
    input_size = self.runner.input_size
    pending = {}

    def flush(canvas):
      items = pending.pop(canvas)
      prepared = [p for _, p in items]
      images, batch = make_batch(prepared, self.batch_size, canvas, input_size)
      depth = stack_depth(prepared, self.batch_size, input_size)
      return [(index, p.name) for index, p in items], images, depth, batch

    for index, sample in _iter_samples(source):
      name = f"#{index}"
      try:
        if isinstance(sample, Exception):
          raise sample
        name = str(sample.get("name", name))
        prepared = self.prepare_fn(sample, input_size)
        prepared.name = name
      except Exception as e:  # noqa: BLE001 - reported as skipped, the run goes on
        skipped.append((name, f"{type(e).__name__}: {e}"))
        if bar is not None:
          bar.update(1)
        continue
      canvas = canvas_for(prepared.gt.shape, self.canvas_multiple)
      pending.setdefault(canvas, []).append((index, prepared))
      if len(pending[canvas]) == self.batch_size:
        yield flush(canvas)
    for canvas in list(pending):
      yield flush(canvas)

  def _total(self):
    source, _ = _samples_of(self.samples)
    return len(source) if hasattr(source, "__len__") else None

  def run(self, params) -> EvalResult:
    """All clicks for every sample. Returns an EvalResult in the order the samples were read;
    SPC counts execution time only (no compilation)."""
    bar = None
    if self.progress:
      from tqdm import tqdm
      bar = tqdm(total=self._total(), desc="evaluate", unit="sample")
    results: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}
    exec_seconds = 0.0
    start = time.perf_counter()
    if self._cached is not None:
      batches, skipped = self._cached
    else:
      skipped = []
      batches = self._prepared_batches(skipped, bar)  # prepared while the loop runs
    kept = []
    for item in batches:
      rows, images, depth, batch = item
      if self.cache:
        kept.append(item)
      out, seconds = self.runner.run(params, images, batch, depth)
      exec_seconds += seconds
      for row, (index, name) in enumerate(rows):
        clicks = np.stack([out.ys[row], out.xs[row], out.positive[row]], axis=-1).astype(np.int32)
        results[index] = (name, out.ious[row], clicks)
      if bar is not None:
        bar.update(len(rows))
    if self.cache and self._cached is None:
      self._cached = (kept, skipped)
    if bar is not None:
      bar.close()

    order = sorted(results)
    k = self.max_clicks
    names = [results[i][0] for i in order]
    ious = np.stack([results[i][1] for i in order]) if order else np.zeros((0, k), np.float32)
    clicks = np.stack([results[i][2] for i in order]) if order else np.zeros((0, k, 3), np.int32)
    spc = exec_seconds / (len(order) * k) if order else None
    summary = metrics.summarize(ious, spc)
    summary["num_skipped"] = len(skipped)
    return EvalResult(names, ious, clicks, summary, list(skipped), time.perf_counter() - start)

  def __call__(self, params) -> dict:
    """The validation metrics (NoC85/90/95, mIoU@1, mIoU@5, mIoU@max_clicks) of `params`."""
    summary = self.run(params).metrics
    keep = VALIDATION_KEYS + (f"mIoU@{self.max_clicks}",)
    return {k: summary[k] for k in keep if k in summary}


def evaluate(model, params, config, samples, batch_size: int | None = None,
             max_clicks: int | None = None, progress: bool = True, *, fns: ModelFns | None = None,
             canvas_multiple: int = 64) -> EvalResult:
  """Run the standard protocol on `samples` once and return per-sample curves and metrics.

  Args:
    model, params: the model and its weights.
    config: the run's ConfigDict (model.input_size, model.depth_source, eval.threshold /
      batch_size / max_clicks).
    samples: an EvalDataset (its `skipped` list is carried over) or a sequence of dicts
      {'image': uint8 (H, W, 3), 'gt': int (H, W) 1/0/-1, 'name': str[, 'depth': (H, W)]};
      'depth' is required by models with depth_source='external'.
    batch_size, max_clicks: default to config.eval.batch_size / config.eval.max_clicks.
    fns: the model's functions (its `encode_image` and `decode` are used); the OIS model's by
      default.
    canvas_multiple: canvas bucket size in pixels (fewer, larger buckets = fewer compiles).
  Returns:
    EvalResult in the order the samples were read; SPC counts execution time only.
  """
  return Evaluator(model, config, samples, fns=fns, batch_size=batch_size, max_clicks=max_clicks,
                   canvas_multiple=canvas_multiple, progress=progress).run(params)
