"""Training images with their candidate objects: `load(name, data_dir, split) -> TrainDataset`.

    ds = load('bsds500', '/data/BSDS500', split='train')
    sample = ds.source[0]       # ds[0] and len(ds) work too: the dataset is itself a source
    sample['image']       # uint8 (H, W, 3)
    sample['masks']       # bool (N, H, W): the candidate objects (area >= min_area), N >= 1
    sample['name']        # str: image id, or '<id>_<k>' for BSDS500 (k-th human segmentation)
    sample['label_maps']  # uint16 (K, H, W) the same objects as layered label maps, 0 = none
    sample['objects']     # int32 (N, 2) (layer, label): masks[i] = label_maps[layer] == label
    sample['areas']       # int32 (N,) pixel counts

An element is one image (HQSeg44K, COCO+LVIS, SBD) or, for BSDS500, one human segmentation of an
image (its segments partition the image; segments of different annotators overlap, so they are
never mixed in one element). No training set here carries ignore labels: every pixel outside the
objects is background. Elements without any object of area >= min_area are left out of `source`
and listed in `skipped`; the smaller segments are dropped and counted in `num_small_segments`.
"""

import dataclasses
import os

import numpy as np

from ois_jax.errors import DataError
from ois_jax.data_pipelines import imaging, tfds_base, train_builders
from ois_jax.data_pipelines.berkeley_ids import BERKELEY_BENCHMARK_IDS

NAMES = tuple(train_builders.BUILDERS)


def object_masks(sample, indices=None):
  """-> bool (N, H, W) masks of sample['objects'] (all, or the rows in `indices`)."""
  objects = sample["objects"] if indices is None else sample["objects"][np.asarray(indices)]
  maps = sample["label_maps"]
  if not len(objects):
    return np.zeros((0,) + maps.shape[1:], bool)
  return np.stack([maps[layer] == label for layer, label in objects])


class TrainSource:
  """Random access over usable elements: (record, layer or -1 for all layers, name)."""

  def __init__(self, records, elements, min_area):
    self._records = records       # tfds ArrayRecordDataSource, one record per image
    self._elements = elements
    self._min_area = min_area

  def __len__(self):
    return len(self._elements)

  def __getitem__(self, index):
    if not -len(self) <= index < len(self):
      raise IndexError(f"sample index {index} out of range for {len(self)} elements")
    record_index, layer, name = self._elements[index]
    record = self._records[record_index]
    try:
      image = imaging.decode_image_bytes(record["image"])
    except imaging.SkipSample as e:
      raise DataError(f"image {name}: {e}; delete the prepared cache to rebuild it") from None
    label_maps, objects, areas = record["label_maps"], record["objects"], record["areas"]
    keep = areas >= self._min_area
    if layer >= 0:  # one human segmentation: its layer alone, renumbered 0
      keep &= objects[:, 0] == layer
      label_maps = label_maps[layer:layer + 1]
      objects = np.stack([np.zeros_like(objects[:, 0]), objects[:, 1]], axis=1)
    sample = {"image": image, "name": name, "label_maps": label_maps,
              "objects": objects[keep], "areas": areas[keep]}
    sample["masks"] = object_masks(sample)
    return sample

  def __repr__(self):
    return f"TrainSource({len(self)} elements, min_area={self._min_area})"


@dataclasses.dataclass
class TrainDataset:
  name: str
  split: str
  source: TrainSource
  skipped: list               # [(name, reason)]: unusable files and elements without a large object
  excluded: list              # image ids left out on purpose (the Berkeley benchmark images)
  num_objects: int            # objects with area >= min_area over the usable elements
  num_small_segments: int     # objects below min_area (dropped)
  prepared_dir: str

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    return self.source[index]

  def summary(self):
    return (f"{self.name}/{self.split}: {len(self)} elements, {self.num_objects} objects; "
            f"{self.num_small_segments} segments below the minimum area dropped, "
            f"{len(self.skipped)} skipped, {len(self.excluded)} images excluded")


def berkeley_ids(data_dir):
  """The Berkeley-benchmark ids: the copy next to BSDS500 when there is one, else the built-in list."""
  path = os.path.join(data_dir, "berkeley_benchmark_ids.txt")
  if os.path.isfile(path):
    with open(path) as f:
      return {line.strip() for line in f if line.strip()}
  return set(BERKELEY_BENCHMARK_IDS)


def select_elements(index, per_layer, excluded_ids, min_area, rotate_transposed, skipped):
  """Metadata index -> usable elements [(record, layer or -1, name)], excluded ids, (objects, small).

  Appends to `skipped` the elements left without an object of `min_area` (and, unless
  rotate_transposed, the BSDS layers stored rotated).
  """
  elements, excluded = [], []
  num_objects = num_small = 0
  for record_index, (image_name, areas, layers, layer_names, rotated) in enumerate(index):
    if image_name in excluded_ids:
      excluded.append(image_name)
      continue
    areas, layers = np.asarray(areas), np.asarray(layers)
    groups = ([(k, layers == k, layer_names[k]) for k in range(len(layer_names))]
              if per_layer else [(-1, np.ones(len(areas), bool), image_name)])
    for layer, members, element_name in groups:
      if layer >= 0 and rotated[layer] and not rotate_transposed:
        skipped.append((element_name, "size mismatch: segmentation is the image transposed "
                                      "(rotate_transposed=True uses it rotated clockwise)"))
        continue
      large = int(np.sum(areas[members] >= min_area))
      small = int(np.sum(members)) - large
      num_small += small
      if large == 0:
        skipped.append((element_name, f"no object with area >= {min_area} px ({small} smaller)"))
        continue
      num_objects += large
      elements.append((record_index, layer, element_name))
  return elements, excluded, (num_objects, num_small)


def load(name, data_dir, split="train", cache_dir=None, exclude_berkeley=True, min_area=80,
         rotate_transposed=False, config=None, rebuild=False):
  """Prepares (first call only) and opens training set `name` (bsds500 | hqseg44k | coco_lvis | sbd).

  exclude_berkeley: leave out the 96 BSDS images of the Berkeley benchmark (bsds500 only).
  min_area: objects with fewer pixels are dropped (and counted); elements left without one skipped.
  rotate_transposed: BSDS500 segmentations whose size is the image's transposed are a size
    mismatch, skipped by default; True uses them rotated 90 degrees clockwise (see docs/data.md).
  config: optional ml_collections config; its data.exclude_berkeley / data.min_object_area /
    data.rotate_transposed / data.cache_dir (when present) override the keyword arguments.
  rebuild: prepare again although a prepared copy exists (the raw files changed).
  """
  if config is not None:
    d = config.data
    exclude_berkeley = bool(d.get("exclude_berkeley", exclude_berkeley))
    min_area = int(d.get("min_object_area", min_area))
    rotate_transposed = bool(d.get("rotate_transposed", rotate_transposed))
    cache_dir = d.get("cache_dir", None) or cache_dir
  if name not in train_builders.BUILDERS:
    raise DataError(f'unknown training dataset {name!r}; choose one of {", ".join(NAMES)}')
  builder_cls = train_builders.BUILDERS[name]
  if split not in builder_cls.SPLITS:
    raise DataError(f'{name} has no split {split!r}; choose one of {", ".join(builder_cls.SPLITS)}')
  builder = tfds_base.prepare(builder_cls, data_dir, cache_dir, config=split, rebuild=rebuild)
  meta = builder.info.metadata
  skipped = [tuple(s) for s in meta["skipped"].get(split, [])]
  excluded_ids = berkeley_ids(data_dir) if (exclude_berkeley and name == "bsds500") else set()
  elements, excluded, counts = select_elements(meta["index"].get(split, []), builder_cls.PER_LAYER,
                                               excluded_ids, min_area, rotate_transposed, skipped)
  if not elements:
    listed = "; ".join(f"{n}: {why}" for n, why in skipped[:5])
    raise DataError(f"{name}/{split}: no usable training image in {data_dir} "
                    f"({len(skipped)} skipped, {len(excluded)} excluded: {listed})")
  source = TrainSource(builder.as_data_source(split), elements, min_area)
  return TrainDataset(name=name, split=split, source=source, skipped=skipped, excluded=excluded,
                      num_objects=counts[0], num_small_segments=counts[1],
                      prepared_dir=str(builder.data_dir))


class HeldOutObjects:
  """Evaluation-style samples from a training split (validation during training, e.g. BSDS500 test).

  Sample i is one object of element i (chosen by a generator seeded with (seed, i), so the same on
  every run): {'image': uint8 (H, W, 3), 'gt': int8 (H, W) 1/0 (no ignore), 'name': '<element>#<label>'}.
  """

  def __init__(self, dataset, num_samples=None, seed=0):
    self._source = dataset.source if isinstance(dataset, TrainDataset) else dataset
    self._len = len(self._source) if num_samples is None else min(int(num_samples), len(self._source))
    self._seed = seed

  def __len__(self):
    return self._len

  def __getitem__(self, index):
    if not -len(self) <= index < len(self):
      raise IndexError(f"sample index {index} out of range for {len(self)} samples")
    index %= len(self)
    sample = self._source[index]
    pick = int(np.random.default_rng((self._seed, index)).integers(len(sample["masks"])))
    return {"image": sample["image"], "gt": sample["masks"][pick].astype(np.int8),
            "name": f"{sample['name']}#{sample['objects'][pick][1]}"}
