"""tfds builders for the training sets: BSDS500, HQSeg44K train, COCO+LVIS and SBD.

One record per image, objects stored as LAYERED LABEL MAPS (the COCO+LVIS packing of RITM):
  image       encoded image bytes (decoded with Pillow on access)
  name        image id
  label_maps  uint16 (K, H, W); 0 = no object in that layer
  objects     int32 (N, 2): (layer, label) -> object mask = label_maps[layer] == label
  areas       int32 (N,): pixel count of each object
Objects of one layer never overlap; overlapping objects (COCO+LVIS) sit in different layers. BSDS500
keeps one layer per human segmentation (each segment is an object; PER_LAYER: each layer is its own
training element). Every object is stored; the minimum-area rule is applied when loading
(`train_datasets.load(min_area=...)`) from the per-record areas and layers that the metadata index
keeps. One builder config per split, so a split prepares on its own.
"""

import os
import pickle

import numpy as np
import tensorflow_datasets as tfds

from ois_jax.data_pipelines import imaging, safe_pickle
from ois_jax.data_pipelines.imaging import SkipSample
from ois_jax.data_pipelines.tfds_base import IMAGE_BYTES, FolderBuilder, require_files
from ois_jax.errors import DataError


def objects_of(label_maps, object_labels=None):
  """(K, H, W) label maps -> objects (N, 2) int32 (layer, label) and areas (N,) int32.

  object_labels: optional [(layer, label)] to keep (default: every non-zero label of every layer).
  """
  objects, areas = [], []
  for layer, labels in enumerate(label_maps):
    counts = np.bincount(labels.ravel())
    wanted = (np.nonzero(counts[1:])[0] + 1 if object_labels is None else
              [lab for lyr, lab in object_labels if lyr == layer])
    for label in wanted:
      objects.append((layer, int(label)))
      areas.append(int(counts[label]) if label < len(counts) else 0)
  return np.asarray(objects, np.int32).reshape(-1, 2), np.asarray(areas, np.int32)


def to_label_map(raw, what):
  if raw.min() < 0 or raw.max() > 65535:
    raise SkipSample(f"{what}: labels outside 0..65535")
  return raw.astype(np.uint16)


class TrainBuilder(FolderBuilder, skip_registration=True):
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.1.0": "index keeps which layers were stored rotated"}
  SPLITS = ("train",)
  PER_LAYER = False  # True: each layer (human segmentation) is a separate training element

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    cls.BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=s, description=f"{s} split") for s in cls.SPLITS]

  def splits_to_build(self):
    return (self.builder_config.name,)

  def features(self):
    return tfds.features.FeaturesDict({
        "image": IMAGE_BYTES,
        "name": tfds.features.Text(),
        "label_maps": tfds.features.Tensor(shape=(None, None, None), dtype=np.uint16, encoding="zlib"),
        "objects": tfds.features.Tensor(shape=(None, 2), dtype=np.int32),
        "areas": tfds.features.Tensor(shape=(None,), dtype=np.int32),
    })

  def index_entry(self, example):
    # [image name, object areas, object layers, layer names, layers stored rotated]
    return [example["name"], example["areas"].tolist(), example["objects"][:, 0].tolist(),
            example.pop("_layer_names"), example.pop("_rotated")]

  def example(self, name, image_bytes, label_maps, object_labels=None, skipped=(), layer_names=None,
              rotated=None):
    objects, areas = objects_of(label_maps, object_labels)
    if len(objects) == 0:
      raise SkipSample("empty ground truth (no object)")
    return {"image": image_bytes, "name": name, "label_maps": label_maps, "objects": objects,
            "areas": areas, "_skipped": list(skipped),
            "_layer_names": list(layer_names or [name] * len(label_maps)),
            "_rotated": list(rotated or [False] * len(label_maps))}


class Bsds500(TrainBuilder, skip_registration=True):
  """BSDS500: ~5 human segmentations per image (uint16 label maps, labels from 1); one layer each."""
  SPLITS = ("train", "val", "test")
  PER_LAYER = True
  LAYOUT = ("{train,val,test}/images/<id>.jpg and {train,val,test}/segmentations/<id>_<k>.png "
            "(uint16 label maps, one per human segmentation)")

  def find_samples(self, root, split):
    image_dir = os.path.join(root, split, "images")
    images = imaging.find_by_stem(image_dir, imaging.IMAGE_EXTENSIONS)
    require_files(images, image_dir, self.LAYOUT)
    segs = {}
    for stem, path in imaging.find_by_stem(os.path.join(root, split, "segmentations"),
                                           imaging.MASK_EXTENSIONS).items():
      image_id, _, k = stem.rpartition("_")
      if image_id and k.isdigit():
        segs.setdefault(image_id, []).append((int(k), stem, path))
    return [(i, (path, sorted(segs.get(i, [])))) for i, path in images.items()]

  def make_example(self, name, item):
    image_path, segs = item
    if not segs:
      raise SkipSample("no human segmentation in segmentations/")
    data, hw = imaging.read_image_file(image_path)
    layers, layer_names, rotated, skipped = [], [], [], []
    for _, stem, path in segs:
      try:
        raw = imaging.read_mask_file(path)
        # Some copies (the shared one: 351 segmentations of 63 train images) hold portrait label
        # maps for images stored landscape. Rotated clockwise they follow the image edges (349 of
        # 351 by boundary contrast). Kept rotated and flagged; loading skips them unless asked.
        turned = raw.shape == hw[::-1] and hw[0] != hw[1]
        if turned:
          raw = np.rot90(raw, k=-1)
        imaging.check_same_size(hw, raw.shape, "segmentation")
        layers.append(to_label_map(raw, stem))
        layer_names.append(stem)
        rotated.append(bool(turned))
      except SkipSample as e:
        skipped.append([stem, str(e)])
    if not layers:
      raise SkipSample("no usable human segmentation (" + "; ".join(r for _, r in skipped) + ")")
    return self.example(name, data, np.stack(layers), skipped=skipped, layer_names=layer_names,
                        rotated=rotated)


HQSEG_TRAIN_SUBSETS = (
    ("DIS5K-TR", "DIS5K/DIS-TR/im", "DIS5K/DIS-TR/gt"),
    ("ThinObject5K-TR", "thin_object_detection/ThinObject5K/images_train",
     "thin_object_detection/ThinObject5K/masks_train"),
    ("FSS", "cascade_psp/fss_all", "cascade_psp/fss_all"),
    ("DUTS-TR", "cascade_psp/DUTS-TR", "cascade_psp/DUTS-TR"),
    ("DUTS-TE", "cascade_psp/DUTS-TE", "cascade_psp/DUTS-TE"),
    ("ECSSD", "cascade_psp/ecssd", "cascade_psp/ecssd"),
    ("MSRA10K", "cascade_psp/MSRA_10K", "cascade_psp/MSRA_10K"),
)


class Hqseg44kTrain(TrainBuilder, skip_registration=True):
  """HQSeg44K train (44320 images): one mask per image, > 0 = object; names `<subset>/<stem>`."""
  LAYOUT = ("DIS5K/DIS-TR/{im,gt}, thin_object_detection/ThinObject5K/{images_train,masks_train}, "
            "cascade_psp/{fss_all,DUTS-TR,DUTS-TE,ecssd,MSRA_10K} (<name>.jpg next to <name>.png)")

  def find_samples(self, root, split):
    items = []
    for subset, im_dir, gt_dir in HQSEG_TRAIN_SUBSETS:
      # cascade_psp keeps image and mask side by side: only .jpg are images there.
      exts = (".jpg", ".jpeg") if im_dir == gt_dir else imaging.IMAGE_EXTENSIONS
      images = imaging.find_by_stem(os.path.join(root, im_dir), exts)
      masks = imaging.find_by_stem(os.path.join(root, gt_dir), (".png",))
      items += [(f"{subset}/{s}", (p, masks.get(s))) for s, p in images.items()]
    require_files(items, root, self.LAYOUT)
    return items

  def make_example(self, name, item):
    image_path, mask_path = item
    if mask_path is None:
      raise SkipSample("image has no .png mask")
    data, hw = imaging.read_image_file(image_path)
    raw = imaging.read_mask_file(mask_path)
    imaging.check_same_size(hw, raw.shape)
    return self.example(name, data, (raw > 0).astype(np.uint16)[None])


def sbd_root(root):
  """Accepts benchmark_RELEASE/ or its dataset/ folder."""
  nested = os.path.join(root, "dataset")
  return nested if os.path.isdir(os.path.join(nested, "img")) else root


def load_sbd_instances(path):
  from scipy.io import loadmat  # scipy is slow to import; only SBD needs it
  try:
    gt = loadmat(path)["GTinst"]
    try:
      seg = gt["Segmentation"][0, 0]
    except (ValueError, IndexError, KeyError):
      seg = gt[0][0][0]
  except Exception as e:  # scipy raises a zoo of types for damaged .mat files
    raise SkipSample(f"unreadable instance map {os.path.basename(path)} ({type(e).__name__}: {e})") from None
  return np.asarray(seg).astype(np.int64)


class Sbd(TrainBuilder, skip_registration=True):
  """SBD (Hariharan et al.): dataset/img/<id>.jpg, dataset/inst/<id>.mat (GTinst.Segmentation), train.txt/val.txt."""
  SPLITS = ("train", "val")
  LAYOUT = "dataset/img/<id>.jpg, dataset/inst/<id>.mat and dataset/{train,val}.txt"

  def find_samples(self, root, split):
    root = sbd_root(root)
    list_path = os.path.join(root, f"{split}.txt")
    if not os.path.isfile(list_path):
      raise DataError(f"no {split}.txt in {root}; expected layout: {self.LAYOUT}")
    with open(list_path) as f:
      ids = [line.strip() for line in f if line.strip()]
    images = imaging.find_by_stem(os.path.join(root, "img"), imaging.IMAGE_EXTENSIONS)
    require_files(images, os.path.join(root, "img"), self.LAYOUT)
    return [(i, (images.get(i), os.path.join(root, "inst", f"{i}.mat"))) for i in ids]

  def make_example(self, name, item):
    image_path, mat_path = item
    if image_path is None:
      raise SkipSample("listed in the split file but missing from img/")
    if not os.path.isfile(mat_path):
      raise SkipSample("missing instance map inst/" + os.path.basename(mat_path))
    data, hw = imaging.read_image_file(image_path)
    inst = load_sbd_instances(mat_path)
    imaging.check_same_size(hw, inst.shape, "instance map")
    inst = np.where(inst == 255, 0, inst)  # VOC-style boundary value, never an instance
    return self.example(name, data, to_label_map(inst, "instance map")[None])


class CocoLvis(TrainBuilder, skip_registration=True):
  """COCO+LVIS as packed by RITM (used by SimpleClick/SegNext).

  <split>/hannotation.pickle: {image_id: {'num_instance_masks': n, 'hierarchy': ..., ...}};
  <split>/images/<image_id>.jpg; <split>/masks/<image_id>.pickle: (encoded_layers, objs_mapping),
  encoded_layers a list of PNG-encoded label maps and objs_mapping[i] = (layer, label). Objects
  0..n-1 are instances (the objects here); the rest are 'stuff' and are left out, as RITM does with
  stuff_prob = 0. The hierarchy (parts) is not used. The pickles are read with a restricted
  unpickler (data_pipelines/safe_pickle.py): a crafted file cannot run code.
  """
  SPLITS = ("train", "val")
  LAYOUT = "<split>/hannotation.pickle, <split>/images/<id>.jpg, <split>/masks/<id>.pickle"

  def find_samples(self, root, split):
    anno_path = os.path.join(root, split, "hannotation.pickle")
    if not os.path.isfile(anno_path):
      raise DataError(f"no hannotation.pickle in {os.path.join(root, split)}; expected layout: {self.LAYOUT}")
    try:
      with open(anno_path, "rb") as f:
        annotations = safe_pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
      raise DataError(f"{anno_path}: unreadable annotation file ({e})") from None
    if not isinstance(annotations, dict):
      raise DataError(f"{anno_path}: expected a dict of image annotations, got {type(annotations).__name__}")
    images = imaging.find_by_stem(os.path.join(root, split, "images"), imaging.IMAGE_EXTENSIONS)
    require_files(images, os.path.join(root, split, "images"), self.LAYOUT)
    return [(str(i), (images.get(str(i)), os.path.join(root, split, "masks", f"{i}.pickle"), info))
            for i, info in sorted(annotations.items(), key=lambda kv: str(kv[0]))]

  def make_example(self, name, item):
    image_path, masks_path, info = item
    if image_path is None:
      raise SkipSample("annotated but missing from images/")
    data, hw = imaging.read_image_file(image_path)
    try:
      with open(masks_path, "rb") as f:
        encoded_layers, objs_mapping = safe_pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
      raise SkipSample(f"unreadable packed masks {os.path.basename(masks_path)} ({type(e).__name__})") from None
    layers = []
    for k, encoded in enumerate(encoded_layers):
      raw = imaging.read_mask_from_bytes(np.asarray(encoded).tobytes(), f"mask layer {k}")
      imaging.check_same_size(hw, raw.shape, f"mask layer {k}")
      layers.append(to_label_map(raw, f"mask layer {k}"))
    if not layers:
      raise SkipSample("empty ground truth (no mask layer)")
    num_instances = int(info.get("num_instance_masks", len(objs_mapping)))
    wanted = [tuple(int(v) for v in objs_mapping[i]) for i in range(min(num_instances, len(objs_mapping)))]
    return self.example(name, data, np.stack(layers), object_labels=wanted)


BUILDERS = {
    "bsds500": Bsds500,
    "hqseg44k": Hqseg44kTrain,
    "coco_lvis": CocoLvis,
    "sbd": Sbd,
}
