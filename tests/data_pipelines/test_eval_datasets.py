"""Evaluation datasets: the real GrabCut copy, published layouts on small fixtures, bad input."""

import os

import numpy as np
import pytest
from PIL import Image

from ois_jax.data_pipelines import eval_datasets
from ois_jax.errors import DataError

import shared_data

RNG = np.random.default_rng(0)


def write_image(path, hw=(12, 16), fmt=None):
  return shared_data.write_image(path, RNG, hw, fmt)


def write_mask(path, values, mode="L"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.asarray(values, np.uint8)).convert(mode).save(path)


def write_palette_png(path, ids):
  """Palette PNG with the VOC colour map (255 -> (224, 224, 192)), as VOC/DAVIS ship them."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  palette = []
  for k in range(256):
    r = g = b = 0
    for bit in range(8):
      r |= ((k >> (3 * bit)) & 1) << (7 - bit)
      g |= ((k >> (3 * bit + 1)) & 1) << (7 - bit)
      b |= ((k >> (3 * bit + 2)) & 1) << (7 - bit)
    palette += [r, g, b]
  image = Image.frombytes("P", (ids.shape[1], ids.shape[0]), np.ascontiguousarray(ids, np.uint8).tobytes())
  image.putpalette(palette)
  image.save(path)


def random_mask(hw=(12, 16), values=(0, 128, 255)):
  m = RNG.choice(np.asarray(values, np.uint8), size=hw)
  m[3:6, 4:9] = values[-1]  # never empty
  return m


def by_name(ds):
  return {ds.source[i]["name"]: ds.source[i] for i in range(len(ds))}


@pytest.fixture(scope="module")
def grabcut(tmp_path_factory):
  return eval_datasets.load("grabcut", shared_data.require("GrabCut"), cache_dir=str(tmp_path_factory.mktemp("cache")))


def test_grabcut_real_copy(grabcut):
  assert len(grabcut) == 50 and grabcut.skipped == []
  names = {grabcut.source[i]["name"] for i in range(len(grabcut))}
  assert names == {os.path.splitext(f)[0] for f in os.listdir(os.path.join(shared_data.require("GrabCut"), "data_GT"))}
  with_ignore = 0
  for i in range(len(grabcut)):
    s = grabcut.source[i]
    assert s["image"].dtype == np.uint8 and s["image"].ndim == 3 and s["image"].shape[2] == 3
    assert s["gt"].dtype == np.int8 and s["gt"].shape == s["image"].shape[:2]
    assert set(np.unique(s["gt"])) <= {-1, 0, 1} and (s["gt"] == 1).any()
    with_ignore += bool((s["gt"] == -1).any())
  assert with_ignore > 0
  # One sample against the raw files read independently.
  s = next(grabcut.source[i] for i in range(len(grabcut)) if grabcut.source[i]["name"] == "llama")
  raw = np.asarray(Image.open(os.path.join(shared_data.require("GrabCut"), "boundary_GT", "llama.bmp")).convert("L"))
  np.testing.assert_array_equal(s["gt"], np.select([raw == 128, raw > 128], [-1, 1], 0))
  np.testing.assert_array_equal(
      s["image"], np.asarray(Image.open(os.path.join(shared_data.require("GrabCut"), "data_GT", "llama.bmp")).convert("RGB")))


def test_berkeley_real_copy(tmp_path):
  root = shared_data.require("Berkeley")
  ds = eval_datasets.load("berkeley", root, cache_dir=str(tmp_path))
  assert len(ds) == 100 and ds.skipped == []
  samples = by_name(ds)
  # Two instances of one image: same pixels, different objects.
  np.testing.assert_array_equal(samples["189011a"]["image"], samples["189011b"]["image"])
  assert not np.array_equal(samples["189011a"]["gt"], samples["189011b"]["gt"])
  assert all((s["gt"] == 1).any() and s["gt"].shape == s["image"].shape[:2] for s in samples.values())


def test_grain_reads_the_source(grabcut):
  import grain
  ds = grain.MapDataset.source(grabcut.source).map(lambda s: (s["name"], int((s["gt"] == 1).sum())))
  assert [n for n, _ in ds[:3]] == [grabcut.source[i]["name"] for i in range(3)]
  assert all(area > 0 for _, area in ds[:3])


def test_grabcut_rule_and_bad_files_skipped(tmp_path):
  root = tmp_path / "GrabCut"
  expected = {}
  for name in ("a", "b"):
    write_image(str(root / "data_GT" / f"{name}.png"))
    raw = random_mask()
    write_mask(str(root / "boundary_GT" / f"{name}.bmp"), raw)
    expected[name] = np.where(raw == 128, -1, np.where(raw > 128, 1, 0))
  write_image(str(root / "data_GT" / "corrupt.jpg"))
  (root / "data_GT" / "corrupt.jpg").write_bytes(b"not a jpeg at all")
  write_mask(str(root / "boundary_GT" / "corrupt.bmp"), random_mask())
  write_image(str(root / "data_GT" / "empty.png"))
  write_mask(str(root / "boundary_GT" / "empty.bmp"), np.full((12, 16), 128))  # ignore only
  write_image(str(root / "data_GT" / "mismatch.png"), hw=(12, 16))
  write_mask(str(root / "boundary_GT" / "mismatch.bmp"), random_mask(hw=(16, 12)))
  write_image(str(root / "data_GT" / "lonely.png"))
  write_mask(str(root / "boundary_GT" / "orphan.bmp"), random_mask())
  (root / "boundary_GT" / "badmask.bmp").write_bytes(b"BM garbage")
  write_image(str(root / "data_GT" / "badmask.png"))

  ds = eval_datasets.load("grabcut", str(root), cache_dir=str(tmp_path / "cache"))
  samples = by_name(ds)
  assert sorted(samples) == ["a", "b"]
  for name, gt in expected.items():
    np.testing.assert_array_equal(samples[name]["gt"], gt)
  reasons = dict(ds.skipped)
  assert sorted(reasons) == ["badmask", "corrupt", "empty", "lonely", "mismatch", "orphan"]
  assert "unreadable image" in reasons["corrupt"]
  assert "unreadable mask" in reasons["badmask"]
  assert "empty" in reasons["empty"]
  assert "size mismatch" in reasons["mismatch"] and "12x16" in reasons["mismatch"]
  assert "no mask" in reasons["lonely"] and "no image" in reasons["orphan"]

  # Fixing a file is noticed (the prepared copy is keyed on the raw files): it is prepared again.
  write_mask(str(root / "boundary_GT" / "empty.bmp"), np.select([expected["a"] == -1, expected["a"] == 1], [128, 255], 0))
  rebuilt = eval_datasets.load("grabcut", str(root), cache_dir=str(tmp_path / "cache"))
  assert sorted(by_name(rebuilt)) == ["a", "b", "empty"] and len(rebuilt.skipped) == 5
  np.testing.assert_array_equal(by_name(rebuilt)["empty"]["gt"], expected["a"])
  # An added file too; --rebuild forces a new preparation of unchanged files.
  write_image(str(root / "data_GT" / "c.jpg"))
  write_mask(str(root / "boundary_GT" / "c.bmp"), np.select([expected["a"] == -1, expected["a"] == 1], [128, 255], 0))
  added = eval_datasets.load("grabcut", str(root), cache_dir=str(tmp_path / "cache"))
  assert sorted(by_name(added)) == ["a", "b", "c", "empty"]
  forced = eval_datasets.load("grabcut", str(root), cache_dir=str(tmp_path / "cache"), rebuild=True)
  assert sorted(by_name(forced)) == ["a", "b", "c", "empty"] and forced.skipped == added.skipped
  (root / "data_GT" / "c.jpg").unlink()
  (root / "boundary_GT" / "c.bmp").unlink()
  ds = eval_datasets.load("grabcut", str(root), cache_dir=str(tmp_path / "cache"))
  assert sorted(by_name(ds)) == ["a", "b", "empty"]

  # A reload reads the prepared copy: same samples and skips, even with the raw folder gone.
  for path in sorted(root.rglob("*"), reverse=True):
    path.unlink() if path.is_file() else path.rmdir()
  again = eval_datasets.load("grabcut", str(root), cache_dir=str(tmp_path / "cache"))
  assert again.skipped == ds.skipped and len(again) == 3
  np.testing.assert_array_equal(by_name(again)["a"]["gt"], expected["a"])


def test_folder_without_images_is_a_data_error(tmp_path):
  (tmp_path / "DAVIS" / "img").mkdir(parents=True)
  (tmp_path / "DAVIS" / "gt").mkdir()
  with pytest.raises(DataError, match=r"no images found in .*img.*expected layout: img/"):
    eval_datasets.load("davis345", str(tmp_path / "DAVIS"), cache_dir=str(tmp_path / "cache"))
  with pytest.raises(DataError, match="does not exist"):
    eval_datasets.load("berkeley", str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "cache"))
  with pytest.raises(DataError, match="unknown evaluation dataset"):
    eval_datasets.load("imagenet", str(tmp_path), cache_dir=str(tmp_path / "cache"))


def test_all_samples_unusable_is_a_data_error(tmp_path):
  root = tmp_path / "Berkeley"
  write_image(str(root / "images" / "x.jpg"))
  write_mask(str(root / "masks" / "x.png"), np.zeros((12, 16)))
  with pytest.raises(DataError, match="no usable sample.*x: empty ground-truth"):
    eval_datasets.load("berkeley", str(root), cache_dir=str(tmp_path / "cache"))


def test_berkeley_colour_masks_read_like_opencv(tmp_path):
  cv2 = pytest.importorskip("cv2")
  root = tmp_path / "Berkeley"
  image = write_image(str(root / "images" / "189011a.png"))
  raw = random_mask(values=(0, 100, 128, 200, 255))
  rgb = np.stack([255 - raw, np.full_like(raw, 3), raw], axis=2)  # the mask is in the blue channel
  (root / "masks").mkdir()
  Image.fromarray(rgb).save(root / "masks" / "189011a.png")
  ds = eval_datasets.load("berkeley", str(root), cache_dir=str(tmp_path / "cache"))
  s = ds.source[0]
  assert s["name"] == "189011a"
  np.testing.assert_array_equal(s["image"], image)
  reference = cv2.imread(str(root / "masks" / "189011a.png"))[:, :, 0].astype(np.int32)  # SimpleClick
  reference = np.where(reference == 128, -1, np.where(reference > 128, 1, 0))
  np.testing.assert_array_equal(s["gt"], reference)


@pytest.mark.parametrize("name, img_dir, gt_dir", [("davis345", "img", "gt"), ("coco_mval", "img", "gt")])
def test_nonzero_rule_with_palette_masks(tmp_path, name, img_dir, gt_dir):
  root = tmp_path / name
  expected = {}
  for stem in ("000", "001"):
    image = write_image(str(root / img_dir / f"{stem}.png"))
    ids = random_mask(values=(0, 1, 2, 3))
    write_palette_png(str(root / gt_dir / f"{stem}.png"), ids)
    expected[stem] = (image, (ids > 0).astype(np.int8))
  ds = eval_datasets.load(name, str(root), cache_dir=str(tmp_path / "cache"))
  assert len(ds) == 2 and ds.skipped == []
  for stem, s in by_name(ds).items():
    np.testing.assert_array_equal(s["image"], expected[stem][0])
    np.testing.assert_array_equal(s["gt"], expected[stem][1])


def test_pascalvoc_one_sample_per_instance(tmp_path):
  root = tmp_path / "VOC2012"
  ids = np.zeros((12, 16), np.uint8)
  ids[1:5, 1:6], ids[6:10, 8:14], ids[5, :] = 1, 2, 255  # two instances and a boundary band
  ids[0, 0] = 255
  image = write_image(str(root / "JPEGImages" / "2007_000032.png"))
  write_palette_png(str(root / "SegmentationObject" / "2007_000032.png"), ids)
  write_image(str(root / "JPEGImages" / "2007_000033.png"))  # listed, but its mask is missing
  write_image(str(root / "JPEGImages" / "2008_000001.png"))  # not in val.txt: ignored
  write_palette_png(str(root / "SegmentationObject" / "2008_000001.png"), np.zeros((12, 16), np.uint8))
  os.makedirs(root / "ImageSets" / "Segmentation")
  (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n2007_000033\n")

  ds = eval_datasets.load("pascalvoc", str(root), cache_dir=str(tmp_path / "cache"))
  samples = by_name(ds)
  assert sorted(samples) == ["2007_000032_1", "2007_000032_2"]
  for k in (1, 2):
    s = samples[f"2007_000032_{k}"]
    np.testing.assert_array_equal(s["image"], image)
    np.testing.assert_array_equal(s["gt"], np.where(ids == 255, -1, ids == k).astype(np.int8))
  assert [n for n, _ in ds.skipped] == ["2007_000033"]


def test_hqseg44k_val_subsets(tmp_path):
  root = tmp_path / "data"
  subsets = {"DIS5K-VD": ("DIS5K/DIS-VD/im", "DIS5K/DIS-VD/gt"),
             "ThinObject5K-TE": ("thin_object_detection/ThinObject5K/images_test",
                                 "thin_object_detection/ThinObject5K/masks_test"),
             "COIFT": ("thin_object_detection/COIFT/images", "thin_object_detection/COIFT/masks"),
             "HRSOD": ("thin_object_detection/HRSOD/images", "thin_object_detection/HRSOD/masks_max255")}
  expected = {}
  for subset, (im, gt) in list(subsets.items())[:3]:  # HRSOD missing
    write_image(str(root / im / "same_stem.jpg"), fmt="JPEG")
    soft = random_mask(values=(0, 1, 37, 255))
    write_mask(str(root / gt / "same_stem.png"), soft)
    expected[f"{subset}/same_stem"] = (soft > 0).astype(np.int8)
  ds = eval_datasets.load("hqseg44k", str(root), cache_dir=str(tmp_path / "cache"))
  samples = by_name(ds)
  assert sorted(samples) == sorted(expected)
  for name, gt in expected.items():
    np.testing.assert_array_equal(samples[name]["gt"], gt)
    assert samples[name]["image"].shape == (12, 16, 3)
  assert ds.skipped == [("HRSOD", "subset folder missing")]


def test_preparing_leaves_no_temporary_folder(tmp_path, monkeypatch):
  import tempfile
  scratch = tmp_path / "tmp"
  scratch.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  root = tmp_path / "Berkeley"
  write_image(str(root / "images" / "x.jpg"))
  write_mask(str(root / "masks" / "x.png"), random_mask())
  eval_datasets.load("berkeley", str(root), cache_dir=str(tmp_path / "cache"))
  assert sorted(p.name for p in scratch.iterdir()) == []
