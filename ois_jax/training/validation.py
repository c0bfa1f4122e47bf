"""Validation during training: the jitted click loop of ois_jax.evaluation on held-out samples.

Samples are prepared once (host), stacked into fixed batches on one canvas (one compile), and
each validation runs encode + all clicks under `lax.scan` (`simulator.click_loop`), then the
standard metrics (NoC85/90/95, mIoU@k). Unlike `evaluate`, this path also feeds per-image
depth maps, so configs with `depth_source='external'` (procedural scenes) validate too.
"""

import math

import cv2
import jax
import numpy as np

from ois_jax import transforms
from ois_jax.errors import DataError
from ois_jax.evaluation import evaluator, metrics, simulator


def heldout_samples(config, limit: int | None = None) -> list[dict]:
  """Up to `limit` held-out samples {'image', 'gt', 'name'[, 'depth']} for `config.data`.

  procedural: the 'val' scenes (`data_pipelines.training.make_eval_source`); other datasets: the
  'val' split of the training source, one object per image (the largest usable one covering at
  most half of the image).
  """
  from ois_jax.data_pipelines import training as data_training
  limit = int(config.eval.num_samples if limit is None else limit)
  try:
    source = data_training.make_eval_source(config)
    pick = None
  except DataError:
    source = data_training.make_source(config, "val")
    pick = _largest_object
  samples, seen_images = [], set()
  for i in range(len(source)):
    if len(samples) >= limit:
      break
    if pick is None:
      sample = source[i]
    else:
      record = source[i]
      # BSDS500 has several human segmentations per image ('<id>_<k>'): one sample per image.
      image_id = str(record.get("name", i)).rsplit("_", 1)[0]
      if image_id in seen_images:
        continue
      seen_images.add(image_id)
      sample = pick(record, int(config.data.min_object_area))
    if sample is not None:
      samples.append(sample)
  if not samples:
    raise DataError(f"no usable held-out sample for dataset {config.data.dataset!r}")
  return samples


def _largest_object(record: dict, min_area: int) -> dict | None:
  from ois_jax.data_pipelines import training as data_training
  try:
    image = data_training.decode_image(record["image"], str(record.get("name", "")))
  except Exception:  # noqa: BLE001 - an unreadable held-out image is skipped
    return None
  masks = data_training.record_masks(record)
  if masks.shape[0] == 0 or masks.shape[1:] != image.shape[:2]:
    return None
  areas = masks.reshape(masks.shape[0], -1).sum(1)
  # The largest object that is neither tiny nor most of the image (BSDS segments include sky).
  pixels = masks[0].size
  moderate = np.where((areas >= min_area) & (areas <= 0.5 * pixels), areas, -1)
  best = int(np.argmax(moderate)) if moderate.max() > 0 else int(np.argmax(areas))
  if areas[best] < min_area:
    return None
  gt = masks[best].astype(np.int8)
  if record.get("ignore") is not None:
    gt[np.asarray(record["ignore"], bool)] = -1
  out = {"image": image, "gt": gt, "name": str(record.get("name", ""))}
  if record.get("depth") is not None:
    out["depth"] = np.asarray(record["depth"], np.float32)
  return out


def model_depth(depth: np.ndarray, resized_hw, size: int) -> np.ndarray:
  """(H, W) depth -> (S, S): resized like the image (bilinear), zero padding bottom/right."""
  h, w = resized_hw
  out = np.zeros((size, size), np.float32)
  out[:h, :w] = cv2.resize(np.asarray(depth, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
  return out


class Validator:
  """`validator(params) -> metrics dict` (NoC85/90/95, mIoU@k, ...) on fixed held-out samples."""

  def __init__(self, config, model, fns, samples: list[dict], max_clicks: int | None = None,
               canvas_multiple: int = 32):
    self.max_clicks = int(max_clicks or config.eval.max_clicks)
    self.batch_size = int(config.eval.batch_size)
    size = int(config.model.input_size)
    external = config.model.depth_source == "external"
    prepared, depths = [], []
    for sample in samples:
      p = evaluator.prepare(sample, size)
      prepared.append(p)
      if external:
        if sample.get("depth") is None:
          raise DataError(f"held-out sample {p.name} has no depth map (depth_source='external')")
        resized_hw = transforms.make_transform(p.gt.shape, size).resized_hw
        depths.append(model_depth(sample["depth"], resized_hw, size))
    self.num_samples = len(prepared)
    hmax = max(p.gt.shape[0] for p in prepared)
    wmax = max(p.gt.shape[1] for p in prepared)
    canvas = tuple(int(math.ceil(v / canvas_multiple) * canvas_multiple) for v in (hmax, wmax))
    self.batches = []
    for start in range(0, len(prepared), self.batch_size):
      chunk = prepared[start:start + self.batch_size]
      images, loop_batch = evaluator.make_batch(chunk, self.batch_size, canvas, size)
      depth = None
      if external:
        depth = np.zeros((self.batch_size, size, size), np.float32)
        depth[:len(chunk)] = np.stack(depths[start:start + len(chunk)])
      self.batches.append((len(chunk), images, depth, loop_batch))

    num_pos = int(config.model.num_positive_slots)
    num_neg = int(config.model.num_negative_slots)
    threshold = float(config.eval.threshold)
    max_clicks_ = self.max_clicks

    def run(params, images, depth, loop_batch):
      from ois_jax.models.prompts import Clicks
      state = fns.encode_image(model, params, images, depth)
      decode = lambda st, clicks, prev, has_prev: fns.decode(model, params, st, clicks, prev, has_prev)
      empty = jax.tree.map(jax.numpy.asarray, Clicks.empty(images.shape[0], num_pos, num_neg))
      return simulator.click_loop(decode, state, loop_batch, empty, max_clicks_, threshold,
                                  num_pos).ious

    self._run = jax.jit(run)

  def ious(self, params) -> np.ndarray:
    """(N, max_clicks) IoU after each click."""
    rows = []
    for count, images, depth, loop_batch in self.batches:
      rows.append(np.asarray(self._run(params, images, depth, loop_batch))[:count])
    return np.concatenate(rows)

  def __call__(self, params) -> dict:
    summary = metrics.summarize(self.ious(params))
    keep = ("NoC85", "NoC90", "NoC95", "mIoU@1", "mIoU@5", f"mIoU@{self.max_clicks}")
    return {k: summary[k] for k in keep if k in summary}


def make_validator(config, model, fns, samples: list[dict] | None = None) -> Validator:
  samples = heldout_samples(config) if samples is None else samples
  return Validator(config, model, fns, samples)
