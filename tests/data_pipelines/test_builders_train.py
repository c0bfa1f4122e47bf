"""Training-set builders: BSDS500 (real val split and fixtures), HQSeg44K train, SBD, COCO+LVIS."""

import io
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from ois_jax.data_pipelines import train_datasets
from ois_jax.errors import DataError

import shared_data

RNG = np.random.default_rng(1)


def write_image(path, hw=(12, 16), fmt=None):
  return shared_data.write_image(path, RNG, hw, fmt)


def write_label_map(path, labels):
  """uint16 PNG like the BSDS500 segmentations."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.asarray(labels, np.uint16)).save(path)


def png_bytes(array):
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format="PNG")
  return np.frombuffer(buf.getvalue(), np.uint8)  # what cv2.imencode returns


def masks_by_label(label_map, min_area):
  labels, counts = np.unique(label_map[label_map > 0], return_counts=True)
  return {int(k): label_map == k for k, c in zip(labels, counts) if c >= min_area}


@pytest.fixture(scope="module")
def bsds_val(tmp_path_factory):
  """(cache dir, the real BSDS500 val split, its raw folder)."""
  root = shared_data.require("BSDS500")
  cache = str(tmp_path_factory.mktemp("cache"))
  return cache, train_datasets.load("bsds500", root, split="val", cache_dir=cache), root


def test_bsds500_val_excludes_berkeley_ids(bsds_val):
  cache, ds, root = bsds_val
  with open(os.path.join(root, "berkeley_benchmark_ids.txt")) as f:
    berkeley = {line.strip() for line in f if line.strip()}
  val_ids = {os.path.splitext(f)[0] for f in os.listdir(os.path.join(root, "val", "images"))}
  assert sorted(ds.excluded) == sorted(val_ids & berkeley) and len(ds.excluded) > 0
  image_ids = {ds.source[i]["name"].rsplit("_", 1)[0] for i in range(len(ds))}
  assert image_ids == val_ids - berkeley
  assert ds.num_objects > 0 and ds.num_small_segments > 0
  # Without the exclusion (no new preparation) the benchmark images come back.
  everything = train_datasets.load("bsds500", root, split="val", cache_dir=cache, exclude_berkeley=False)
  assert everything.excluded == [] and len(everything) > len(ds)
  assert everything.num_objects > ds.num_objects


def test_bsds500_element_is_one_human_segmentation(bsds_val):
  _, ds, root = bsds_val
  sample = ds.source[3]
  name = sample["name"]
  label_map = np.asarray(Image.open(os.path.join(root, "val", "segmentations", f"{name}.png")))
  expected = masks_by_label(label_map.astype(np.int64), 80)
  image = np.asarray(Image.open(os.path.join(root, "val", "images", name.rsplit("_", 1)[0] + ".jpg")))
  np.testing.assert_array_equal(sample["image"], image)
  assert sample["masks"].dtype == bool and sample["masks"].shape == (len(expected),) + image.shape[:2]
  assert sorted(sample["objects"][:, 1].tolist()) == sorted(expected)
  for mask, (layer, label), area in zip(sample["masks"], sample["objects"], sample["areas"]):
    assert layer == 0
    np.testing.assert_array_equal(mask, expected[label])
    assert area == mask.sum() >= 80
  np.testing.assert_array_equal(train_datasets.object_masks(sample), sample["masks"])


def test_bsds500_fixture_min_area_and_bad_segmentations(tmp_path):
  root = tmp_path / "BSDS500"
  big = np.ones((12, 16), np.int32)
  big[:, 8:] = 2
  big[0, 0] = 3  # one-pixel segment: below min_area
  write_image(str(root / "train" / "images" / "1001.jpg"))
  write_label_map(str(root / "train" / "segmentations" / "1001_0.png"), big)
  write_label_map(str(root / "train" / "segmentations" / "1001_1.png"), np.ones((10, 16)))  # wrong size
  write_label_map(str(root / "train" / "segmentations" / "1001_3.png"), np.rot90(big))  # portrait
  tiny = np.arange(12 * 16).reshape(12, 16) + 1  # every segment a single pixel
  write_label_map(str(root / "train" / "segmentations" / "1001_2.png"), tiny)
  write_image(str(root / "train" / "images" / "1002.jpg"))
  write_label_map(str(root / "train" / "segmentations" / "1002_0.png"), tiny)
  write_image(str(root / "train" / "images" / "1003.jpg"))  # no segmentation at all
  write_image(str(root / "train" / "images" / "101085.jpg"))  # a Berkeley benchmark id
  write_label_map(str(root / "train" / "segmentations" / "101085_0.png"), big)

  ds = train_datasets.load("bsds500", str(root), cache_dir=str(tmp_path / "cache"), min_area=10)
  assert [ds.source[i]["name"] for i in range(len(ds))] == ["1001_0"]
  sample = ds.source[0]
  assert sample["objects"].tolist() == [[0, 1], [0, 2]]
  np.testing.assert_array_equal(sample["masks"][0], big == 1)
  np.testing.assert_array_equal(sample["areas"], [(big == 1).sum(), (big == 2).sum()])
  assert ds.excluded == ["101085"]
  assert ds.num_small_segments == 1 + 2 * 12 * 16
  reasons = dict(ds.skipped)
  assert "size mismatch" in reasons["1001_1"] and "transposed" in reasons["1001_3"]
  assert "no object with area >= 10" in reasons["1001_2"] and "no object" in reasons["1002_0"]
  assert "no human segmentation" in reasons["1003"]

  # min_area applies at load time: a smaller one keeps the one-pixel segments, no new preparation.
  loose = train_datasets.load("bsds500", str(root), cache_dir=str(tmp_path / "cache"), min_area=1)
  assert len(loose) == 3 and loose.num_small_segments == 0
  # Portrait label maps of a landscape image: used rotated clockwise only when asked.
  turned = train_datasets.load("bsds500", str(root), cache_dir=str(tmp_path / "cache"), min_area=10,
                               rotate_transposed=True)
  assert [turned[i]["name"] for i in range(len(turned))] == ["1001_0", "1001_3"]
  np.testing.assert_array_equal(turned[1]["masks"], turned[0]["masks"])

  with pytest.raises(DataError, match=r"no images found in .*val/images"):
    train_datasets.load("bsds500", str(root), split="val", cache_dir=str(tmp_path / "cache"))
  with pytest.raises(DataError, match="no split"):
    train_datasets.load("bsds500", str(root), split="dev", cache_dir=str(tmp_path / "cache"))


def test_hqseg44k_train_layout(tmp_path):
  root = tmp_path / "data"
  write_image(str(root / "DIS5K" / "DIS-TR" / "im" / "a.jpg"))
  soft = np.zeros((12, 16), np.uint8)
  soft[2:9, 3:12] = 200
  soft[9, 3] = 1  # faint matte pixel still counts (> 0)
  os.makedirs(root / "DIS5K" / "DIS-TR" / "gt")
  Image.fromarray(soft).save(root / "DIS5K" / "DIS-TR" / "gt" / "a.png")
  write_image(str(root / "cascade_psp" / "ecssd" / "b.jpg"))  # image and mask side by side
  Image.fromarray(soft).save(root / "cascade_psp" / "ecssd" / "b.png")
  write_image(str(root / "cascade_psp" / "ecssd" / "c.jpg"))  # no mask
  ds = train_datasets.load("hqseg44k", str(root), cache_dir=str(tmp_path / "cache"), min_area=10)
  samples = {ds.source[i]["name"]: ds.source[i] for i in range(len(ds))}
  assert sorted(samples) == ["DIS5K-TR/a", "ECSSD/b"]
  for s in samples.values():
    assert s["masks"].shape == (1, 12, 16)
    np.testing.assert_array_equal(s["masks"][0], soft > 0)
  assert [n for n, _ in ds.skipped] == ["ECSSD/c"]


def test_sbd_instance_maps(tmp_path):
  from scipy.io import savemat
  root = tmp_path / "benchmark_RELEASE" / "dataset"
  inst = np.zeros((12, 16), np.uint8)
  inst[1:6, 1:7], inst[6:11, 8:15] = 1, 2
  for image_id in ("2008_000002", "2008_000003"):
    write_image(str(root / "img" / f"{image_id}.jpg"))
  os.makedirs(root / "inst")
  savemat(str(root / "inst" / "2008_000002.mat"),
          {"GTinst": {"Segmentation": inst, "Boundaries": np.zeros((2, 1), object),
                      "Categories": np.array([[15], [7]], np.uint8)}})
  (root / "inst" / "2008_000003.mat").write_bytes(b"MATLAB 5.0 MAT-file, broken")
  (root / "train.txt").write_text("2008_000002\n2008_000003\n2008_000004\n")
  (root / "val.txt").write_text("2008_000002\n")

  ds = train_datasets.load("sbd", str(tmp_path / "benchmark_RELEASE"), cache_dir=str(tmp_path / "c"),
                           min_area=5)
  assert len(ds) == 1
  sample = ds.source[0]
  assert sample["name"] == "2008_000002" and sample["objects"].tolist() == [[0, 1], [0, 2]]
  np.testing.assert_array_equal(sample["masks"], np.stack([inst == 1, inst == 2]))
  reasons = dict(ds.skipped)
  assert "unreadable instance map" in reasons["2008_000003"]
  assert "missing from img" in reasons["2008_000004"]
  assert len(train_datasets.load("sbd", str(root), split="val", cache_dir=str(tmp_path / "c"), min_area=5)) == 1


def test_coco_lvis_packed_layers(tmp_path):
  root = tmp_path / "cocolvis" / "train"
  layer0 = np.zeros((12, 16), np.uint8)
  layer0[1:6, 1:8], layer0[7:11, 1:8] = 1, 2
  layer1 = np.zeros((12, 16), np.uint8)
  layer1[2:10, 5:14] = 1   # instance overlapping both instances of layer 0
  layer1[0, 10:16] = 2     # a 'stuff' region: not an object
  write_image(str(root / "images" / "42.jpg"))
  write_image(str(root / "images" / "43.jpg"), hw=(10, 10))
  os.makedirs(root / "masks")
  with open(root / "masks" / "42.pickle", "wb") as f:
    pickle.dump(([png_bytes(layer0), png_bytes(layer1)], [(0, 1), (0, 2), (1, 1), (1, 2)]), f)
  with open(root / "masks" / "43.pickle", "wb") as f:  # layers of another size
    pickle.dump(([png_bytes(layer0)], [(0, 1)]), f)
  annotations = {42: {"num_instance_masks": 3, "hierarchy": {0: None, 1: None, 2: None}},
                 43: {"num_instance_masks": 1, "hierarchy": {0: None}}}
  with open(root / "hannotation.pickle", "wb") as f:
    pickle.dump(annotations, f)

  ds = train_datasets.load("coco_lvis", str(tmp_path / "cocolvis"), cache_dir=str(tmp_path / "c"),
                           min_area=1)
  assert len(ds) == 1
  sample = ds.source[0]
  assert sample["name"] == "42"
  assert sample["objects"].tolist() == [[0, 1], [0, 2], [1, 1]]
  np.testing.assert_array_equal(sample["masks"], np.stack([layer0 == 1, layer0 == 2, layer1 == 1]))
  assert (sample["masks"][0] & sample["masks"][2]).any()  # overlapping instances both kept
  assert [n for n, _ in ds.skipped] == ["43"] and "size mismatch" in ds.skipped[0][1]
  with pytest.raises(DataError, match="hannotation.pickle"):
    train_datasets.load("coco_lvis", str(tmp_path / "cocolvis"), split="val", cache_dir=str(tmp_path / "c"))


def test_config_overrides_and_grain(bsds_val):
  import grain
  import ml_collections
  cache, _, root = bsds_val
  config = ml_collections.ConfigDict({"data": {"exclude_berkeley": False, "min_object_area": 5000,
                                               "cache_dir": cache}})
  ds = train_datasets.load("bsds500", root, split="val", config=config)
  assert ds.excluded == []
  areas = grain.MapDataset.source(ds).map(lambda s: s["areas"].min())
  assert all(a >= 5000 for a in areas[:5])


def test_held_out_objects_are_eval_samples(bsds_val):
  _, ds, root = bsds_val
  held_out = train_datasets.HeldOutObjects(ds, num_samples=4, seed=3)
  assert len(held_out) == 4
  names = []
  for i in range(len(held_out)):
    s = held_out[i]
    element = ds.source[i]
    label = int(s["name"].rsplit("#", 1)[1])
    assert s["name"].startswith(element["name"] + "#")
    assert s["gt"].dtype == np.int8 and set(np.unique(s["gt"])) <= {0, 1}
    np.testing.assert_array_equal(s["gt"], element["label_maps"][0] == label)
    assert (s["gt"] == 1).sum() >= 80
    names.append(s["name"])
  assert [train_datasets.HeldOutObjects(ds, 4, seed=3)[i]["name"] for i in range(4)] == names


def test_prepare_command_lists_skips(tmp_path, capsys):
  from ois_jax.data_pipelines.__main__ import main
  root = tmp_path / "BSDS500"
  labels = np.ones((12, 16), np.int32)
  labels[:, 8:] = 2
  write_image(str(root / "test" / "images" / "7.jpg"))
  write_label_map(str(root / "test" / "segmentations" / "7_0.png"), labels)
  write_image(str(root / "test" / "images" / "8.jpg"))
  assert main(["train", "bsds500", str(root), "--split", "test", "--cache-dir", str(tmp_path / "c"),
               "--min-area", "10"]) == 0
  out = capsys.readouterr().out
  assert "bsds500/test: 1 elements, 2 objects" in out and "skipped 8: no human segmentation" in out
  assert main(["eval", "davis345", str(tmp_path / "missing"), "--cache-dir", str(tmp_path / "c")]) == 1
  assert "does not exist" in capsys.readouterr().err


def test_empty_training_folder_is_a_data_error(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(DataError, match="is empty"):
    train_datasets.load("bsds500", str(empty), cache_dir=str(tmp_path / "cache"))


class _Payload:
  """Unpickling this runs a shell command (what a crafted annotation file would do)."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_coco_lvis_crafted_pickle_does_not_run(tmp_path):
  root = tmp_path / "cocolvis" / "val"
  (root / "images").mkdir(parents=True)
  (root / "masks").mkdir()
  write_image(str(root / "images" / "1.jpg"))
  marker = tmp_path / "pwned"
  with open(root / "hannotation.pickle", "wb") as f:
    pickle.dump({"1": {"num_instance_masks": 1, "payload": _Payload(marker)}}, f)
  with pytest.raises(DataError, match="refusing to load posix.system|refusing to load os.system"):
    train_datasets.load("coco_lvis", str(tmp_path / "cocolvis"), split="val", cache_dir=str(tmp_path / "c"))
  assert not marker.exists()
  # The same payload inside a packed mask file: the sample is skipped, nothing runs.
  with open(root / "hannotation.pickle", "wb") as f:
    pickle.dump({"1": {"num_instance_masks": 1}}, f)
  with open(root / "masks" / "1.pickle", "wb") as f:
    pickle.dump(([_Payload(marker)], [(0, 1)]), f)
  with pytest.raises(DataError, match="no usable sample"):
    train_datasets.load("coco_lvis", str(tmp_path / "cocolvis"), split="val", cache_dir=str(tmp_path / "c"))
  assert not marker.exists()
