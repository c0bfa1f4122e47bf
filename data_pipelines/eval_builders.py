"""tfds builders for the click-loop benchmarks (the protocol's mask rules and the published folder layouts; docs/data.md).

One record per IMAGE: the encoded image bytes stored once, and all its objects as a stack of masks
`masks (N, H, W) uint8` with 1 = object, 0 = background, 255 = ignore (reads as int8 -1). The
metadata index lists each record's object names, so `eval_datasets.EvalDataset` can expose one
sample per object without reading the data.
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from ois_jax.data_pipelines import imaging
from ois_jax.data_pipelines.imaging import SkipSample
from ois_jax.data_pipelines.tfds_base import IMAGE_BYTES, FolderBuilder, require_files


def rule_grabcut(raw):
  """GrabCut/Berkeley: 128 -> ignore (-1), > 128 -> object, everything else background."""
  return np.where(raw == 128, -1, np.where(raw > 128, 1, 0))


def rule_nonzero(raw):
  """DAVIS / COCO-MVal / HQSeg44K: any non-zero value is the object."""
  return (raw > 0).astype(np.int32)


def pair_folder(image_dir, mask_dir, prefix=""):
  """[(name, (image_path, mask_path))] matched by file stem; a missing partner is kept as None."""
  images = imaging.find_by_stem(image_dir, imaging.IMAGE_EXTENSIONS)
  masks = imaging.find_by_stem(mask_dir, imaging.MASK_EXTENSIONS)
  pairs = [(prefix + stem, (path, masks.get(stem))) for stem, path in images.items()]
  pairs += [(prefix + stem, (None, path)) for stem, path in masks.items() if stem not in images]
  return sorted(pairs)


class EvalBuilder(FolderBuilder, skip_registration=True):
  """Single-mask-per-image benchmarks: an image folder and a mask folder paired by file stem."""

  SPLITS = ("test",)
  IMAGE_DIR = ""
  MASK_DIR = ""
  MASK_REDUCE = "max"

  def features(self):
    return tfds.features.FeaturesDict({
        "image": IMAGE_BYTES,
        "image_name": tfds.features.Text(),
        "masks": tfds.features.Tensor(shape=(None, None, None), dtype=np.uint8, encoding="zlib"),
    })

  @staticmethod
  def mask_rule(raw):
    raise NotImplementedError

  def find_samples(self, root, split):
    image_dir = os.path.join(root, self.IMAGE_DIR)
    pairs = pair_folder(image_dir, os.path.join(root, self.MASK_DIR))
    require_files([p for p in pairs if p[1][0]], image_dir, self.LAYOUT)
    return pairs

  def index_entry(self, example):
    return example.pop("_object_names")  # the names of the record's objects, in mask order

  def make_example(self, name, item):
    if item is None:
      raise SkipSample("subset folder missing")
    image_path, mask_path = item
    if image_path is None:
      raise SkipSample(f"mask {os.path.basename(mask_path)} has no image")
    if mask_path is None:
      raise SkipSample(f"image {os.path.basename(image_path)} has no mask in {self.MASK_DIR}/")
    data, hw = imaging.read_image_file(image_path)
    raw = imaging.read_mask_file(mask_path, self.MASK_REDUCE)
    imaging.check_same_size(hw, raw.shape)
    gt = imaging.encode_eval_mask(self.mask_rule(raw))
    return {"image": data, "image_name": name, "masks": gt[None], "_object_names": [name]}


class GrabCut(EvalBuilder, skip_registration=True):
  """GrabCut: 50 images, one object each; boundary band 128 = ignore."""
  IMAGE_DIR, MASK_DIR, MASK_REDUCE = "data_GT", "boundary_GT", "blue"
  LAYOUT = "data_GT/<name>.{jpg,bmp,...} and boundary_GT/<name>.bmp (0 background, 128 ignore, 255 object)"
  mask_rule = staticmethod(rule_grabcut)


class Berkeley(EvalBuilder, skip_registration=True):
  """Berkeley: 100 instances on 96 images (an image is repeated per instance: 189011a/189011b)."""
  IMAGE_DIR, MASK_DIR, MASK_REDUCE = "images", "masks", "blue"
  LAYOUT = "images/<name>.jpg and masks/<name>.png (0 background, 128 ignore, > 128 object)"
  mask_rule = staticmethod(rule_grabcut)


class Davis345(EvalBuilder, skip_registration=True):
  """DAVIS345: 345 frames; every non-zero gt value belongs to the one object."""
  IMAGE_DIR, MASK_DIR = "img", "gt"
  LAYOUT = "img/<name>.jpg and gt/<name>.png (any non-zero value = object)"
  mask_rule = staticmethod(rule_nonzero)


class CocoMval(EvalBuilder, skip_registration=True):
  """COCO-MVal (SimpleClick's 800-instance COCO subset), read like DAVIS."""
  IMAGE_DIR, MASK_DIR = "img", "gt"
  LAYOUT = "img/<name>.jpg and gt/<name>.png (> 0 = object)"
  mask_rule = staticmethod(rule_nonzero)


HQSEG_VAL_SUBSETS = (
    ("DIS5K-VD", "DIS5K/DIS-VD/im", "DIS5K/DIS-VD/gt"),
    ("ThinObject5K-TE", "thin_object_detection/ThinObject5K/images_test",
     "thin_object_detection/ThinObject5K/masks_test"),
    ("COIFT", "thin_object_detection/COIFT/images", "thin_object_detection/COIFT/masks"),
    ("HRSOD", "thin_object_detection/HRSOD/images", "thin_object_detection/HRSOD/masks_max255"),
)


def hqseg_layout(subsets):
  return "; ".join(f"{im}/<name>.jpg with {gt}/<name>.png" for _, im, gt in subsets) + " (> 0 = object)"


class Hqseg44kVal(EvalBuilder, skip_registration=True):
  """HQSeg44K validation (1537 images): DIS5K-VD, ThinObject5K test, COIFT and HRSOD; names `<subset>/<stem>`."""
  LAYOUT = hqseg_layout(HQSEG_VAL_SUBSETS)
  mask_rule = staticmethod(rule_nonzero)

  def find_samples(self, root, split):
    pairs = []  # stems repeat across subsets, so names are `<subset>/<stem>`
    for subset, im_dir, gt_dir in HQSEG_VAL_SUBSETS:
      if not os.path.isdir(os.path.join(root, im_dir)):
        pairs.append((subset, None))  # reported as skipped: a partial copy should not go unnoticed
        continue
      pairs += pair_folder(os.path.join(root, im_dir), os.path.join(root, gt_dir), subset + "/")
    require_files([p for p in pairs if p[1] and p[1][0]], root, self.LAYOUT)
    return pairs


class PascalvocVal(EvalBuilder, skip_registration=True):
  """PascalVOC 2012 val (1449 images): every instance of SegmentationObject is a sample; 255 = ignore."""
  LAYOUT = ("JPEGImages/<id>.jpg, SegmentationObject/<id>.png (palette indices: instance ids, "
            "255 = boundary) and ImageSets/Segmentation/val.txt (a VOC2012 folder)")

  def find_samples(self, root, split):
    list_path = os.path.join(root, "ImageSets", "Segmentation", "val.txt")
    if not os.path.isfile(list_path):
      require_files([], os.path.join(root, "ImageSets", "Segmentation"), self.LAYOUT, what="val.txt")
    with open(list_path) as f:
      ids = [line.strip() for line in f if line.strip()]
    images = imaging.find_by_stem(os.path.join(root, "JPEGImages"), imaging.IMAGE_EXTENSIONS)
    require_files(images, os.path.join(root, "JPEGImages"), self.LAYOUT)
    masks = imaging.find_by_stem(os.path.join(root, "SegmentationObject"), imaging.MASK_EXTENSIONS)
    return [(i, (images.get(i), masks.get(i))) for i in ids]

  def make_example(self, image_id, item):
    image_path, mask_path = item
    if image_path is None:
      raise SkipSample("listed in val.txt but missing from JPEGImages/")
    if mask_path is None:
      raise SkipSample("listed in val.txt but missing from SegmentationObject/")
    data, hw = imaging.read_image_file(image_path)
    raw = imaging.read_mask_file(mask_path)
    imaging.check_same_size(hw, raw.shape)
    instance_ids = [int(v) for v in np.unique(raw) if 0 < v < 255]
    if not instance_ids:
      raise SkipSample("empty ground-truth mask (no object instance)")
    ignore = raw == 255
    masks = np.stack([np.where(ignore, 255, raw == i).astype(np.uint8) for i in instance_ids])
    names = [f"{image_id}_{i}" for i in instance_ids]
    return {"image": data, "image_name": image_id, "masks": masks, "_object_names": names}


BUILDERS = {
    "grabcut": GrabCut,
    "berkeley": Berkeley,
    "davis345": Davis345,
    "coco_mval": CocoMval,
    "pascalvoc": PascalvocVal,
    "hqseg44k": Hqseg44kVal,
}
