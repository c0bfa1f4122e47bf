"""Validation during training: the held-out samples of the training data, run through the one
evaluator (`ois_jax.evaluation.Evaluator`) at every validation step.

Held-out samples carry their depth maps when the source has them, so configs with
`depth_source='external'` (procedural scenes with true depth) validate too.
"""

import numpy as np

from ois_jax.errors import DataError
from ois_jax.evaluation import evaluator


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


def make_validator(config, model, fns, samples: list[dict] | None = None) -> evaluator.Evaluator:
  """`validate(params) -> metrics` on fixed held-out samples: the one evaluator, with the samples
  prepared and batched once (they are evaluated at every validation)."""
  samples = heldout_samples(config) if samples is None else samples
  return evaluator.Evaluator(model, config, samples, fns=fns, canvas_multiple=32, cache=True)
