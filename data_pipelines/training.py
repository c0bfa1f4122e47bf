"""Training input pipeline: grain over a random-access source, augmentation, click sampling.

`make_train_iterator(config, source, seed)` returns a checkpointable iterator of batches
  {'image': float32 (B, S, S, 3) ImageNet-normalised (padding 0),
   'gt': int8 (B, S, S) 1 object / 0 background / -1 ignore (padding is ignore),
   'click_coords': float32 (B, 48, 2) (y, x) model-space pixel coordinates,
   'click_valid': bool (B, 48), slots [0, 24) positive, [24, 48) negative,
   'depth': float32 (B, S, S) (only when the source records carry 'depth')}
where S = config.model.input_size.

Source records are dicts with 'image' (uint8 (H, W, 3) array, encoded bytes or a file path),
the candidate objects as 'masks' (K, H, W) bool (or a label map 'segmentation' (H, W) int,
labels >= 1 are objects), optional 'ignore' (H, W) bool, optional 'depth' (H, W) float32, 'name'.

Per-record pipeline (grain MapDataset, deterministic per seed and element index):
  shuffle (reshuffled each epoch) -> repeat -> random_map(SampleTransform) -> this process's
  rows of each global batch (`ProcessRows`, several processes only)
A record that cannot be used (unreadable image, no object of the minimum area, object too
small after augmentation in every try) becomes a 'skip' element; the batching iterator drops
and counts it (`iterator.stats`), so bad data never reaches JAX. The iterator state is the grain
state plus these counters and round-trips through `get_state` / `set_state` (JSON-serialisable,
so grain's orbax `CheckpointSave` handles it).
"""

from __future__ import annotations

import collections
import os
from typing import Any

import cv2
import grain
import numpy as np

from ois_jax import io as ois_io
from ois_jax import transforms
from ois_jax.data_pipelines import augment as augment_lib
from ois_jax.data_pipelines import click_sampler, imaging
from ois_jax.errors import DataError, ImageError, OISError

MERGE_DILATION = 3      # px at source resolution: objects this close count as neighbours
MAX_MERGED = 2          # at most this many neighbours join the target
MAX_SKIPS_PER_BATCH = 1000


def decode_image(value: Any, name: str = "") -> np.ndarray:
  """uint8 (H, W, 3) from an array, encoded bytes or a path; ImageError if unusable.

  Files and bytes go through the one image decoder, `ois_jax.io` (the pixels inference sees)."""
  if isinstance(value, (str, os.PathLike)):
    return ois_io.load_image(value)
  if isinstance(value, (bytes, bytearray, np.bytes_)) or (
      isinstance(value, np.ndarray) and value.dtype == object):
    raw = value.item() if isinstance(value, np.ndarray) else value
    return ois_io.decode_image(raw, f"image of {name or 'a record'}")
  image = np.asarray(value)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, -1)
  if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.size == 0:
    raise ImageError(f"image of {name or 'a record'} has shape {image.shape}, expected (H, W, 3)")
  if image.dtype != np.uint8:
    raise ImageError(f"image of {name or 'a record'} has dtype {image.dtype}, expected uint8")
  return np.ascontiguousarray(image[..., :3])


def record_masks(record: dict) -> np.ndarray:
  """Candidate objects of a record as (K, H, W) bool."""
  if "masks" in record:
    masks = record["masks"]
    if isinstance(masks, (list, tuple)):
      if not len(masks):
        return np.zeros((0, 1, 1), bool)
      return np.stack([np.asarray(m, bool) for m in masks])
    masks = np.asarray(masks)
    return (masks[None] if masks.ndim == 2 else masks).astype(bool)
  if "segmentation" in record:
    labels = np.asarray(record["segmentation"])
    ids = np.unique(labels)
    ids = ids[ids > 0]
    return labels[None] == ids[:, None, None]
  if "gt" in record:
    return (np.asarray(record["gt"]) == 1)[None]
  raise DataError(f"record {record.get('name', '?')} has none of 'masks', 'segmentation', 'gt'")


def _neighbours(masks: np.ndarray, target: int) -> np.ndarray:
  """Indices of objects touching `target` within MERGE_DILATION px."""
  kernel = np.ones((2 * MERGE_DILATION + 1,) * 2, np.uint8)
  grown = cv2.dilate(masks[target].astype(np.uint8), kernel) > 0
  touching = [i for i in range(masks.shape[0]) if i != target and (masks[i] & grown).any()]
  return np.asarray(touching, np.int64)


class SafeSource:
  """Wraps a random-access source so that a record that cannot be read becomes a skip
  element instead of an exception inside grain's reader."""

  def __init__(self, source):
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index):
    try:
      return self.source[index]
    except (OISError, OSError, ValueError) as e:
      return {"skip": "unreadable_record", "name": f"record {index}", "detail": str(e)}


class SampleTransform:
  """record, rng -> training element (model space) or {'skip': reason, 'name': ...}."""

  def __init__(self, config):
    d, m = config.data, config.model
    self.size = int(m.input_size)
    self.num_pos = int(m.num_positive_slots)
    self.num_neg = int(m.num_negative_slots)
    self.min_area = int(d.min_object_area)
    self.max_points = int(d.max_initial_points)
    self.gamma = float(d.prob_gamma)
    self.merge_prob = float(d.merge_objects_prob)
    self.tries = int(d.get("max_sample_tries", 4))
    self.aug = augment_lib.AugmentConfig(
        size=self.size, enabled=bool(d.get("augment", True)),
        resize_range=tuple(d.get("resize_range", (0.75, 1.40))))

  def __call__(self, record: dict, rng: np.random.Generator) -> dict:
    if "skip" in record:
      return record
    name = str(record.get("name", ""))
    try:
      image = decode_image(record["image"], name)
    except (ImageError, KeyError, ValueError) as e:
      return {"skip": "unreadable_image", "name": name, "detail": str(e)}
    try:
      masks = record_masks(record)
    except (DataError, ValueError) as e:
      return {"skip": "unreadable_masks", "name": name, "detail": str(e)}
    ignore = record.get("ignore")
    ignore = None if ignore is None else np.asarray(ignore, bool)
    depth = record.get("depth")
    depth = None if depth is None else np.asarray(depth, np.float32)
    if any(a is not None and a.shape[-2:] != image.shape[:2]
           for a in (masks if masks.shape[0] else None, depth, ignore)):
      return {"skip": "size_mismatch", "name": name}
    areas = masks.sum(axis=tuple(range(1, masks.ndim)))  # (K,); a record may hold no object
    usable = np.flatnonzero(areas >= self.min_area)
    num_small = int(masks.shape[0] - usable.size)
    if usable.size == 0:
      return {"skip": "no_object_of_min_area", "name": name, "small_segments": num_small}

    for _ in range(self.tries):
      target = int(rng.choice(usable))
      obj = masks[target].copy()
      if rng.random() < self.merge_prob:
        near = np.intersect1d(_neighbours(masks, target), usable)
        if near.size:
          count = int(rng.integers(1, min(MAX_MERGED, near.size) + 1))
          for j in rng.choice(near, size=count, replace=False):
            obj |= masks[j]
      # Labels: 1 target, 2 other objects (negative candidates), 0 background, -1 ignore.
      labels = np.zeros(obj.shape, np.int8)
      labels[masks.any(0)] = 2
      labels[obj] = 1
      if ignore is not None:
        labels[ignore] = -1
      aug_image, aug_labels, aug_depth, content = augment_lib.augment(
          image, labels, depth, rng, self.aug)
      if (aug_labels == 1).sum() < self.min_area:
        continue
      others = aug_labels == 2
      gt = np.where(others, 0, aug_labels).astype(np.int8)
      coords, valid = click_sampler.sample_clicks(
          gt, rng, max_points=self.max_points, gamma=self.gamma, num_pos_slots=self.num_pos,
          num_neg_slots=self.num_neg, others=others)
      out = {"image": aug_image, "gt": gt, "click_coords": coords, "click_valid": valid,
             "content": content, "small_segments": num_small}
      if aug_depth is not None:
        out["depth"] = aug_depth.astype(np.float32)
      return out
    return {"skip": "object_too_small_after_augment", "name": name, "small_segments": num_small}


def normalize(images: np.ndarray, content: np.ndarray) -> np.ndarray:
  """(B, S, S, 3) uint8 -> float32 ImageNet-normalised, exactly 0 where content (B, S, S) is
  False (padding and warped-in border), as padding is in inference preprocessing."""
  x = transforms.normalize(images)
  return np.where(content[..., None], x, np.float32(0.0))


class ProcessRows(grain.MapDataset):
  """One process's part of a global element sequence split into global batches.

  With `count` processes of `per_process` rows each, global batch t holds global elements
  [t * count * per_process, (t + 1) * count * per_process) and process `index` takes the
  `per_process` consecutive ones starting at offset index * per_process: its element j is global
  element (j // per_process) * count * per_process + index * per_process + j % per_process. Only
  those elements are ever read; shuffling and augmentation seeds follow the global index.
  """

  def __init__(self, parent: grain.MapDataset, index: int, count: int, per_process: int):
    super().__init__(parent)
    self._index, self._count, self._per = int(index), int(count), int(per_process)
    if not 0 <= self._index < self._count:
      raise DataError(f"shard index {index} is outside [0, {count})")

  def __len__(self) -> int:
    return len(self._parent) // self._count

  def _global_index(self, j: int) -> int:
    batch, row = divmod(int(j), self._per)
    return (batch * self._count + self._index) * self._per + row

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self._parent[self._global_index(index)]


class TrainIterator(grain.DatasetIterator):
  """Batches per-record elements, dropping and counting skipped ones. Checkpointable."""

  def __init__(self, parent: grain.DatasetIterator, batch_size: int, with_depth: bool):
    super().__init__(parent)
    self.batch_size = int(batch_size)
    self.with_depth = bool(with_depth)
    self.stats = collections.Counter()

  def __next__(self) -> dict:
    elements = []
    skips = 0
    while len(elements) < self.batch_size:
      el = next(self._parent)
      self.stats["records"] += 1
      if el.get("small_segments"):
        self.stats["small_segments"] += int(el["small_segments"])
      if "skip" in el:
        self.stats["skipped_" + el["skip"]] += 1
        skips += 1
        if skips > MAX_SKIPS_PER_BATCH * self.batch_size:
          raise DataError(f"{skips} consecutive unusable training records (last: "
                          f"{el.get('name')}: {el['skip']}); check the data and min_object_area")
        continue
      elements.append(el)
    image = normalize(np.stack([e["image"] for e in elements]),
                      np.stack([e["content"] for e in elements]))
    batch = {"image": image,
             "gt": np.stack([e["gt"] for e in elements]).astype(np.int8),
             "click_coords": np.stack([e["click_coords"] for e in elements]).astype(np.float32),
             "click_valid": np.stack([e["click_valid"] for e in elements]).astype(bool)}
    if self.with_depth:
      missing = [i for i, e in enumerate(elements) if "depth" not in e]
      if missing:
        raise DataError("source mixes records with and without 'depth'")
      batch["depth"] = np.stack([e["depth"] for e in elements]).astype(np.float32)
    return batch

  def get_state(self) -> dict:
    return {"grain": self._parent.get_state(), "stats": dict(self.stats)}

  def set_state(self, state: dict) -> None:
    self._parent.set_state(state["grain"])
    self.stats = collections.Counter(state.get("stats", {}))


def _has_depth(source) -> bool:
  """Whether records carry 'depth': the source's `has_depth` attribute, else the first
  readable record among the first few."""
  flag = getattr(source, "has_depth", None)
  if flag is not None:
    return bool(flag)
  safe = SafeSource(source)
  for i in range(min(len(source), 8)):
    record = safe[i]
    if "skip" not in record:
      return record.get("depth") is not None
  return False


def make_train_iterator(config, source, seed: int | None = None, *, batch_size: int | None = None,
                        shard_index: int | None = None, shard_count: int | None = None,
                        num_threads: int | None = None) -> TrainIterator:
  """Infinite, deterministic, checkpointable iterator of training batches.

  Args:
    config: full config (uses config.model and config.data).
    source: random-access source (len / getitem) of records (see module docstring); None:
      `make_source(config, "train")`.
    seed: shuffle/augmentation seed (default config.seed).
    batch_size: batch of THIS process (default config.data.batch_size // shard_count).
    shard_index, shard_count: this process's rows of every global batch (default
      jax.process_index(), jax.process_count()): each process reads and augments only its
      `batch_size` elements of the global element sequence (`ProcessRows`), so the global batch
      is the one a single process would see, whatever the process count (as long as no record
      is skipped: a skipped element is replaced from the process's own next rows).
    num_threads: grain read threads (default config.data.num_threads).
  """
  if source is None:
    source = make_source(config, "train")
  if len(source) == 0:
    raise DataError("the training source is empty (no records)")
  d = config.data
  if shard_index is None or shard_count is None:
    import jax  # only for the process layout
    shard_index, shard_count = jax.process_index(), jax.process_count()
  seed = int(config.seed if seed is None else seed) % 2**32
  if batch_size is None:
    if int(d.batch_size) % shard_count:
      raise DataError(
          f"data.batch_size {d.batch_size} is not divisible by the {shard_count} shards")
    batch_size = int(d.batch_size) // shard_count
  if num_threads is None:
    num_threads = int(d.get("num_threads", 2))
  ds = grain.MapDataset.source(SafeSource(source))
  ds = ds.shuffle(seed=seed).repeat(None)
  ds = ds.random_map(SampleTransform(config), seed=(seed + 0x5EED) % 2**32)
  if shard_count > 1:
    ds = ProcessRows(ds, shard_index, shard_count, batch_size)
  read = grain.ReadOptions(num_threads=num_threads,
                           prefetch_buffer_size=int(d.get("prefetch_buffer", 4 * batch_size)))
  it_ds = ds.to_iter_dataset(read)
  workers = int(d.get("worker_count", 0))
  if workers > 0:
    from absl import flags  # grain's worker processes read absl flags: use their defaults
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return TrainIterator(iter(it_ds), batch_size, with_depth=_has_depth(source))


def _check_data_dir(path: str) -> None:
  """DataError naming the folder when it is unset, missing or holds no image file."""
  if not path:
    raise DataError("config.data_dir is empty: point it at the training data folder "
                    "(or set config.data.dataset='procedural')")
  if not os.path.isdir(path):
    raise DataError(f"training data folder {path} does not exist")
  for _, _, files in os.walk(path):  # top-down: stops at the first folder with images
    if any(f.lower().endswith(imaging.IMAGE_EXTENSIONS) for f in files):
      return
  raise DataError(
      f"training data folder {path} holds no image files ({', '.join(imaging.IMAGE_EXTENSIONS)})")


def make_source(config, split: str = "train"):
  """The random-access source named by config.data.dataset ('procedural' or a real dataset)."""
  d = config.data
  if d.dataset == "procedural":
    from ois_jax.data_pipelines import procedural
    num = d.procedural_num_train if split == "train" else d.procedural_num_val
    return procedural.scenes_from_config(d, split, num)
  _check_data_dir(config.data_dir)
  try:
    from ois_jax.data_pipelines import train_datasets
  except ImportError as e:
    raise DataError(f"dataset {d.dataset!r} needs data_pipelines.train_datasets ({e})") from e
  return train_datasets.load(d.dataset, config.data_dir, split=split, config=config)


def make_eval_source(config):
  """Held-out samples {'image', 'gt', 'name'[, 'depth']} for validation during training.

  procedural: one object per scene of the 'val' split (disjoint random stream).
  """
  d = config.data
  if d.dataset == "procedural":
    from ois_jax.data_pipelines import procedural
    return procedural.ProceduralEvalSource(make_source(config, "val"))
  raise DataError(
      f"no held-out validation source for dataset {d.dataset!r} in data_pipelines.training")
