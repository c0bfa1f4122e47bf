"""grain training pipeline: batch format, determinism, checkpointable state, bad data."""

import json

import cv2
import numpy as np
import pytest

from ois_jax import geometry
from ois_jax.configs import ois_tiny
from ois_jax.data_pipelines import procedural, training
from ois_jax.errors import DataError

SIZE = 56


def _config(**data):
  c = ois_tiny.get_config()
  c.model.input_size = SIZE
  c.data.batch_size = 3
  c.data.min_object_area = 30
  c.data.num_threads = 2
  c.data.prefetch_buffer = 6
  for k, v in data.items():
    c.data[k] = v
  return c


@pytest.fixture(scope="module")
def scenes():
  return procedural.ProceduralScenes(num_scenes=12, seed=1, size=(60, 80), min_area=30, world="levels")


def _take(it, n):
  return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_batch_format_and_click_placement(scenes):
  it = training.make_train_iterator(_config(), scenes, seed=0)
  for batch in _take(it, 3):
    assert batch["image"].shape == (3, SIZE, SIZE, 3) and batch["image"].dtype == np.float32
    assert batch["gt"].shape == (3, SIZE, SIZE) and batch["gt"].dtype == np.int8
    assert batch["click_coords"].shape == (3, 48, 2) and batch["click_coords"].dtype == np.float32
    assert batch["click_valid"].shape == (3, 48) and batch["click_valid"].dtype == bool
    assert batch["depth"].shape == (3, SIZE, SIZE) and batch["depth"].dtype == np.float32
    assert set(np.unique(batch["gt"])) <= {-1, 0, 1}
    for b in range(3):
      gt, coords, valid = batch["gt"][b], batch["click_coords"][b], batch["click_valid"][b]
      assert (gt == 1).sum() >= 30
      pos = coords[:24][valid[:24]].astype(int)
      neg = coords[24:][valid[24:]].astype(int)
      assert len(pos) >= 1 and len(pos) <= 24 and len(neg) <= 24
      assert (gt[pos[:, 0], pos[:, 1]] == 1).all()
      assert (gt[neg[:, 0], neg[:, 1]] == 0).all() if len(neg) else True
      # Procedural scenes have no ignore pixels: every ignore pixel is padding or warped-in
      # border, exactly zero after normalisation. 4:3 scenes leave 14 padding rows or columns.
      assert not batch["image"][b][gt == -1].any()
      assert (gt[-14:] == -1).all() or (gt[:, -14:] == -1).all()
  # Images are ImageNet-normalised: the content is not in [0, 255] any more.
  assert batch["image"].min() < 0


def _interior(mask):
  return cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0


def test_image_target_and_depth_stay_aligned(scenes):
  # Colour-coded records: red object, blue background.
  records = []
  for i in range(6):
    masks = np.zeros((1, 50, 70), bool)
    cv2.circle(masks[0].view(np.uint8), (20 + 5 * i, 25), 14, 1, -1)
    image = np.zeros((50, 70, 3), np.uint8)
    image[masks[0]] = (255, 0, 0)
    image[~masks[0]] = (0, 0, 255)
    records.append({"image": image, "masks": masks, "name": f"coded{i}"})
  it = training.make_train_iterator(_config(), records, seed=0, num_threads=0)
  for batch in _take(it, 3):
    rgb = batch["image"] * geometry.IMAGENET_STD + geometry.IMAGENET_MEAN
    for b in range(3):
      obj, bg = _interior(batch["gt"][b] == 1), _interior(batch["gt"][b] == 0)
      assert obj.any() and bg.any()
      assert (rgb[b][obj][:, 0] > rgb[b][obj][:, 2]).all()
      assert (rgb[b][bg][:, 2] > rgb[b][bg][:, 0]).all()
  # Procedural depth: objects are at inverse depth >= 0.285, the background below 0.2.
  it = training.make_train_iterator(_config(), scenes, seed=0)
  for batch in _take(it, 3):
    for b in range(3):
      obj = _interior(batch["gt"][b] == 1)
      assert (batch["depth"][b][obj] > 0.25).all()


def test_same_seed_same_batches_other_seed_differs(scenes):
  a = _take(training.make_train_iterator(_config(), scenes, seed=5), 3)
  b = _take(training.make_train_iterator(_config(), scenes, seed=5), 3)
  c = _take(training.make_train_iterator(_config(), scenes, seed=6), 3)
  no_threads = _take(training.make_train_iterator(_config(), scenes, seed=5, num_threads=0), 3)
  _assert_batches_equal(a, b)
  _assert_batches_equal(a, no_threads)  # reader threads do not change the stream
  assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_state_round_trip_resumes_the_same_sequence(scenes):
  cfg = _config()
  it = training.make_train_iterator(cfg, scenes, seed=2)
  _take(it, 5)  # crosses an epoch boundary (12 records, 3 per batch)
  state = json.loads(json.dumps(it.get_state()))  # must survive JSON (grain/orbax checkpoints)
  expected = _take(it, 4)
  resumed = training.make_train_iterator(cfg, scenes, seed=2)
  resumed.set_state(state)
  _assert_batches_equal(expected, _take(resumed, 4))
  assert resumed.get_state() == it.get_state()


def test_epochs_are_reshuffled_and_augmented_differently(scenes):
  it = training.make_train_iterator(_config(), scenes, seed=0)
  epoch1 = _take(it, 4)
  epoch2 = _take(it, 4)
  assert not np.array_equal(epoch1[0]["image"], epoch2[0]["image"])


def test_shards_are_disjoint(scenes):
  seen = []
  for shard in range(2):
    src = _NamedSource(scenes)
    it = training.make_train_iterator(_config(batch_size=4), src, seed=0, shard_index=shard,
                                      shard_count=2, num_threads=0)
    assert it.batch_size == 2  # the global batch of 4 split over 2 shards
    del src.read[:]  # construction peeks at record 0 for 'depth'
    _take(it, 3)
    seen.append(set(src.read))
  assert seen[0] and seen[1] and not seen[0] & seen[1]
  with pytest.raises(DataError, match="divisible"):
    training.make_train_iterator(_config(), scenes, seed=0, shard_index=0, shard_count=2)


class _NamedSource:
  """Wraps a source and records which indices were read."""

  def __init__(self, source):
    self.source, self.read = source, []

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    self.read.append(int(i))
    return self.source[i]


def _bad_and_good_records():
  good = []
  for i in range(4):
    image = np.full((40, 50, 3), 40 * i, np.uint8)
    masks = np.zeros((2, 40, 50), bool)
    masks[0, 5:30, 5:25] = True
    masks[1, 10:35, 28:45] = True
    good.append({"image": image, "masks": masks, "name": f"good{i}"})
  ok_png = cv2.imencode(".png", np.zeros((40, 50, 3), np.uint8))[1].tobytes()
  label_map = np.zeros((40, 50), np.int32)
  label_map[2:30, 3:40] = 1
  label_map[30:32, 0:3] = 2  # a 6-pixel segment: below the minimum area
  records = good + [
      {"image": b"definitely not an image", "masks": good[0]["masks"], "name": "garbage"},
      {"image": ok_png, "segmentation": label_map, "name": "encoded_with_small_segment"},
      {"image": good[0]["image"], "masks": np.zeros((1, 40, 50), bool), "name": "empty"},
      {"image": good[0]["image"], "masks": np.ones((1, 30, 50), bool), "name": "mismatch"},
      {"image": good[0]["image"], "name": "no masks at all"},
      {"image": good[0]["image"], "masks": np.zeros((0, 40, 50), bool), "name": "zero objects"},
      {"image": good[0]["image"], "masks": [], "name": "an empty list of objects"},
  ]
  return records


def test_bad_records_are_skipped_and_counted(tmp_path):
  records = _bad_and_good_records()
  # Image files: one readable, one missing.
  cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((40, 50, 3), np.uint8))
  records.append({"image": str(tmp_path / "ok.png"), "masks": records[0]["masks"], "name": "file"})
  records.append({"image": str(tmp_path / "gone.png"), "masks": records[0]["masks"],
                  "name": "missing file"})
  it = training.make_train_iterator(_config(augment=False), records, seed=0, num_threads=0)
  batches = _take(it, 10)  # 30 good elements: every record is seen several times
  assert all(b["image"].shape == (3, SIZE, SIZE, 3) for b in batches)
  assert "depth" not in batches[0]
  stats = it.stats
  assert stats["skipped_unreadable_image"] >= 2  # garbage bytes and the missing file
  assert stats["skipped_no_object_of_min_area"] >= 1
  assert stats["skipped_size_mismatch"] >= 1 and stats["skipped_unreadable_masks"] >= 1
  assert stats["small_segments"] >= 1  # the 6-pixel segment of the label-map record
  assert stats["records"] == 30 + sum(v for k, v in stats.items() if k.startswith("skipped_"))


class _FlakySource:
  """Record 1 cannot be read (e.g. a corrupt prepared cache): its reader raises DataError."""

  def __init__(self, records):
    self.records = records

  def __len__(self):
    return len(self.records)

  def __getitem__(self, i):
    if i == 1:
      raise DataError("image good1: cannot decode")
    return self.records[i]


def test_records_whose_reader_raises_are_skipped():
  records = _bad_and_good_records()[:4]
  it = training.make_train_iterator(_config(), _FlakySource(records), seed=0, num_threads=0)
  _take(it, 4)
  assert it.stats["skipped_unreadable_record"] >= 1


def test_only_bad_records_raise_a_data_error(monkeypatch):
  monkeypatch.setattr(training, "MAX_SKIPS_PER_BATCH", 2)
  records = [{"image": b"garbage", "masks": np.ones((1, 4, 4), bool), "name": f"bad{i}"}
             for i in range(3)]
  it = training.make_train_iterator(_config(), records, seed=0, num_threads=0)
  with pytest.raises(DataError, match="unusable training records"):
    next(it)
  with pytest.raises(DataError, match="empty"):
    training.make_train_iterator(_config(), [], seed=0)


def test_merge_objects_takes_the_union_of_neighbours():
  masks = np.zeros((2, 40, 40), bool)
  masks[0, 5:35, 5:20] = True
  masks[1, 5:35, 20:35] = True   # touches object 0
  record = {"image": np.zeros((40, 40, 3), np.uint8), "masks": masks, "name": "pair"}
  c = _config(augment=False)
  c.model.input_size = 40
  c.data.merge_objects_prob = 1.0
  out = training.SampleTransform(c)(record, np.random.default_rng(0))
  np.testing.assert_array_equal(out["gt"] == 1, masks[0] | masks[1])
  c.data.merge_objects_prob = 0.0
  for seed in range(4):
    out = training.SampleTransform(c)(record, np.random.default_rng(seed))
    single = out["gt"] == 1
    assert np.array_equal(single, masks[0]) or np.array_equal(single, masks[1])


def test_procedural_make_source_and_eval_source():
  c = _config(dataset="procedural", procedural_num_train=10, procedural_num_val=4,
              procedural_size=(48, 64))
  train = training.make_source(c, "train")
  assert len(train) == 10 and train[0]["image"].shape == (48, 64, 3)
  val = training.make_eval_source(c)
  assert len(val) == 4 and val[0]["gt"].dtype == np.int8
  assert not np.array_equal(train[0]["image"], val.scenes[0]["image"])
  batch = next(training.make_train_iterator(c, None, seed=0))
  assert batch["depth"].shape == (3, SIZE, SIZE)


def test_procedural_depth_key_reaches_training_and_evaluation():
  from ois_jax.data_pipelines import eval_datasets
  c = _config(dataset="procedural", procedural_num_train=4, procedural_num_val=3,
              procedural_size=(48, 64), procedural_depth="occlusion")
  train, val = training.make_source(c, "train"), eval_datasets.load("procedural", config=c).source
  for source, scenes in ((train, train), (val, val.scenes)):
    for i in range(len(source)):
      expected = procedural.occlusion_depth(scenes.layout(i))
      np.testing.assert_array_equal(source[i]["depth"], expected)
      assert not np.array_equal(expected, scenes.layout(i)["depth"])


def test_data_dir_without_images_names_the_folder(tmp_path):
  c = _config(dataset="bsds500")
  (tmp_path / "train" / "images").mkdir(parents=True)
  (tmp_path / "train" / "images" / "notes.txt").write_text("no images here")
  for data_dir, message in ((str(tmp_path), "holds no image files"),
                            (str(tmp_path / "absent"), "does not exist"), ("", "data_dir is empty")):
    c.data_dir = data_dir
    with pytest.raises(DataError, match=message) as err:
      training.make_train_iterator(c, None, seed=0)
    assert data_dir in str(err.value)
