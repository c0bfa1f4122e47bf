"""Procedural depth scenes: determinism, splits, the camera world's geometry, the levels world's
occlusion order."""

import cv2
import numpy as np
import pytest

from ois_jax.data_pipelines import procedural


@pytest.fixture(scope="module")
def scenes():
  return procedural.ProceduralScenes(num_scenes=50, seed=3, size=(72, 96), min_area=40)


@pytest.fixture(scope="module")
def levels():
  return procedural.ProceduralScenes(num_scenes=50, seed=3, size=(72, 96), min_area=40, world="levels")


def test_records_are_deterministic_per_seed_and_index(scenes):
  a, b = scenes[7], scenes[7]
  for key in ("image", "masks", "depth"):
    np.testing.assert_array_equal(a[key], b[key])
  assert a["name"] == b["name"]
  other_seed = procedural.ProceduralScenes(num_scenes=50, seed=4, size=(72, 96))[7]
  assert not np.array_equal(a["image"], other_seed["image"])
  assert not np.array_equal(a["image"], scenes[8]["image"])


def test_val_split_differs_from_train(scenes):
  val = procedural.ProceduralScenes(num_scenes=50, seed=3, size=(72, 96), split="val")
  for i in range(5):
    assert not np.array_equal(scenes[i]["image"], val[i]["image"])
  with pytest.raises(ValueError, match="split"):
    procedural.ProceduralScenes(split="test")
  with pytest.raises(ValueError, match="world must be one of"):
    procedural.ProceduralScenes(world="flat")
  with pytest.raises(IndexError):
    scenes.layout(50)


def test_record_format(scenes):
  rec = scenes[0]
  assert rec["image"].shape == (72, 96, 3) and rec["image"].dtype == np.uint8
  assert rec["depth"].shape == (72, 96) and rec["depth"].dtype == np.float32
  assert rec["masks"].dtype == bool and rec["masks"].shape[1:] == (72, 96)
  for i in range(10):
    masks = scenes[i]["masks"]
    assert (masks.sum((1, 2)) >= 40).all()
    assert masks.sum(0).max() <= 1  # visible parts do not overlap


def test_levels_depth_follows_occlusion_order(levels):
  scenes = levels
  occluded_pixels = 0
  for i in range(20):
    lay = scenes.layout(i)
    owner, amodal, depth, obj_depth = lay["owner"], lay["amodal"], lay["depth"], lay["object_depth"]
    for k in range(amodal.shape[0]):
      visible = owner == k
      # The visible object is the closest (largest inverse depth) of all objects covering a pixel.
      for j in range(amodal.shape[0]):
        overlap = visible & amodal[j]
        if j != k and overlap.any():
          assert obj_depth[k] > obj_depth[j]
          assert (depth[overlap] > obj_depth[j] + procedural.TILT).all()
          occluded_pixels += overlap.sum()
      if visible.any():  # an object may be hidden completely by nearer ones
        assert np.abs(depth[visible] - obj_depth[k]).max() <= procedural.TILT + 1e-6
    # Background is farther than every object.
    assert (depth[owner == -1] < procedural.DEPTH_LEVELS[0] - procedural.TILT).all()
    # The record's masks are exactly the visible parts of the objects big enough.
    rec = scenes[i]
    expected = [owner == k for k in range(amodal.shape[0]) if (owner == k).sum() >= 40]
    np.testing.assert_array_equal(rec["masks"], np.stack(expected).reshape(-1, 72, 96))
  assert occluded_pixels > 0  # the scenes really contain occlusions


def test_occlusion_ranks_follow_what_covers_what():
  # Three shapes drawn far to near: 1 covers part of 0, 2 covers part of 1, and 3 is apart.
  amodal = np.zeros((4, 6, 12), bool)
  amodal[0, :, 0:4] = amodal[1, :, 3:7] = amodal[2, :, 6:9] = amodal[3, :, 10:12] = True
  owner = np.full((6, 12), -1, np.int32)
  for k in range(4):
    owner[amodal[k]] = k
  np.testing.assert_array_equal(procedural.occlusion_ranks(owner, amodal), [0, 1, 2, 0])
  # A completely hidden object gives no cue: the one over it stays at rank 0.
  hidden = amodal.copy()
  hidden[0] = False
  hidden[0, :, 4:6] = True
  owner_hidden = owner.copy()
  owner_hidden[owner_hidden == 0] = -1
  np.testing.assert_array_equal(procedural.occlusion_ranks(owner_hidden, hidden), [0, 0, 1, 0])


@pytest.mark.parametrize("world", procedural.WORLDS)
def test_occlusion_depth_is_what_one_image_shows(world):
  scenes = procedural.ProceduralScenes(num_scenes=50, seed=3, size=(72, 96), min_area=40, world=world)
  occlusion = procedural.ProceduralScenes(num_scenes=50, seed=3, size=(72, 96), min_area=40,
                                          depth="occlusion", world=world)
  for i in range(20):
    lay = scenes.layout(i)
    true_rec, occ_rec = scenes[i], occlusion[i]
    np.testing.assert_array_equal(true_rec["image"], occ_rec["image"])
    np.testing.assert_array_equal(true_rec["masks"], occ_rec["masks"])
    depth, owner = occ_rec["depth"], lay["owner"]
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth[owner < 0], lay["depth"][owner < 0])  # the ground plane
    ranks = procedural.occlusion_ranks(owner, lay["amodal"])
    gap = procedural.DEPTH_LEVELS[1] - procedural.DEPTH_LEVELS[0]
    for k in np.unique(owner[owner >= 0]):
      np.testing.assert_allclose(depth[owner == k], procedural.DEPTH_LEVELS[0] + gap * ranks[k], rtol=1e-6)
      # Where the true depth puts k in front of a visible object it covers, so does this one.
      for j in range(k):
        if (owner == j).any() and (lay["amodal"][j] & (owner == k)).any():
          assert ranks[k] > ranks[j]
  with pytest.raises(ValueError, match="depth must be one of"):
    procedural.ProceduralScenes(depth="estimated")


@pytest.mark.parametrize("world", procedural.WORLDS)
def test_colour_is_ambiguous_between_objects(world):
  scenes = procedural.ProceduralScenes(num_scenes=50, seed=3, size=(72, 96), min_area=40, world=world)
  # Two colour families per scene: most scenes have two objects whose mean colours are close.
  close = 0
  for i in range(20):
    rec = scenes[i]
    means = np.array([rec["image"][m].mean(0) for m in rec["masks"]])
    d = np.linalg.norm(means[:, None] - means[None], axis=-1)
    d[np.eye(len(means), dtype=bool)] = np.inf
    close += bool(len(means) > 1 and d.min() < 30)
  assert close >= 12


def test_eval_source_picks_one_visible_object(scenes):
  ev = procedural.ProceduralEvalSource(scenes)
  assert len(ev) == len(scenes)
  for i in range(5):
    s = ev[i]
    assert s["gt"].dtype == np.int8 and s["gt"].shape == (72, 96)
    masks = scenes[i]["masks"]
    assert any(np.array_equal(s["gt"] == 1, m) for m in masks)
    np.testing.assert_array_equal(s["gt"], ev[i]["gt"])
    assert s["depth"].shape == (72, 96)


def _iou(a, b):
  return (a & b).sum() / max((a | b).sum(), 1)


def _deepest_point(mask: np.ndarray) -> tuple[int, int]:
  """(y, x) of the mask pixel farthest from its border (where an annotator clicks first)."""
  dist = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
  return np.unravel_index(dist.argmax(), dist.shape)


def test_levels_depth_separates_objects_that_colour_does_not():
  # From the deepest point of each held-out object: thresholding |depth - depth(click)| finds
  # the object, while even an oracle colour threshold (object's true mean colour, best
  # tolerance) does much worse — the scenes are built so that order information helps.
  ev = procedural.ProceduralEvalSource(procedural.ProceduralScenes(
      num_scenes=24, seed=0, split="val", size=(72, 96), min_area=40, world="levels"))
  depth_iou, colour_iou = [], []
  for i in range(len(ev)):
    s = ev[i]
    gt = s["gt"] == 1
    y, x = _deepest_point(gt)
    near = np.abs(s["depth"] - s["depth"][y, x]) < 2 * procedural.TILT + 1e-3
    depth_iou.append(_iou(near, gt))
    image = cv2.GaussianBlur(s["image"].astype(np.float32), (5, 5), 0)
    colour_dist = np.linalg.norm(image - image[gt].mean(0), axis=-1)
    colour_iou.append(max(_iou(colour_dist < t, gt) for t in np.linspace(2, 80, 40)))
  assert np.mean(depth_iou) > 0.95
  assert np.mean(colour_iou) < np.mean(depth_iou) - 0.25


# --- the camera world ----------------------------------------------------------------------------
def test_camera_object_depth_is_the_ground_at_its_contact_row(scenes):
  for i in range(20):
    lay = scenes.layout(i)
    h = lay["depth"].shape[0]
    rows = np.arange(h, dtype=np.float32)
    ground = procedural.ground_inverse_depth(rows, lay["horizon"], lay["camera"])
    np.testing.assert_allclose(ground, np.maximum(rows - lay["horizon"], 0) / lay["camera"], rtol=1e-6)
    for k, mask in enumerate(lay["amodal"]):
      contact = lay["contact_row"][k]
      assert np.flatnonzero(mask.any(1))[-1] == contact  # it stands on the ground at that row
      assert contact > lay["horizon"]
      np.testing.assert_allclose(lay["object_depth"][k], ground[contact], rtol=1e-6)
      visible = lay["owner"] == k
      np.testing.assert_allclose(lay["depth"][visible], ground[contact], rtol=1e-6)
    # Where no object is: the ground below the horizon, the sky (0) above it.
    bare = lay["owner"] < 0
    np.testing.assert_allclose(lay["depth"][bare], np.broadcast_to(ground[:, None], bare.shape)[bare],
                               rtol=1e-6)


def test_camera_apparent_size_follows_inverse_depth():
  # Physical sizes vary, so size alone is an imperfect cue, but nearer objects are larger.
  scenes = procedural.ProceduralScenes(num_scenes=60, seed=5, size=(120, 160))
  depths, heights = [], []
  for i in range(60):
    lay = scenes.layout(i)
    for k, mask in enumerate(lay["amodal"]):
      rows = np.flatnonzero(mask.any(1))
      if rows[0] > 0:  # not cut by the top of the frame
        depths.append(lay["object_depth"][k])
        heights.append(rows[-1] - rows[0] + 1)
  corr = np.corrcoef(depths, heights)[0, 1]
  assert 0.6 < corr < 0.99


def test_camera_drawing_order_agrees_with_depth(scenes):
  occluded_pixels = 0
  for i in range(30):
    lay = scenes.layout(i)
    owner, amodal, obj = lay["owner"], lay["amodal"], lay["object_depth"]
    assert (np.diff(obj) > 0).all()  # painted far to near, each at its own depth
    for k in range(amodal.shape[0]):
      for j in range(amodal.shape[0]):
        hidden = amodal[j] & (owner == k)
        if j != k and hidden.any():  # where k covers j, k is the nearer one
          assert obj[k] > obj[j]
          occluded_pixels += hidden.sum()
    # Every visible surface is the nearest thing along its ray: the object seen is the nearest
    # of all objects there, and no object is hidden by the ground.
    covering = np.where(amodal, obj[:, None, None], -np.inf).max(0)
    seen = owner >= 0
    np.testing.assert_allclose(lay["depth"][seen], covering[seen], rtol=1e-6)
  assert occluded_pixels > 0


def test_camera_scenes_hold_look_alikes_at_different_depths():
  scenes = procedural.ProceduralScenes(num_scenes=40, seed=2, split="val", size=(120, 160))
  with_look_alikes = touching = 0
  for i in range(40):
    lay, rec = scenes.layout(i), scenes[i]
    owner = lay["owner"]
    ids = [k for k in range(lay["amodal"].shape[0]) if (owner == k).sum() >= scenes.min_area]
    image = rec["image"].astype(np.float32)
    means = {k: image[owner == k].mean(0) for k in ids}
    pairs = [(a, b) for a in ids for b in ids if a < b
             and np.linalg.norm(means[a] - means[b]) < 40 and lay["object_depth"][b] > lay["object_depth"][a]]
    with_look_alikes += bool(pairs)
    grown = [cv2.dilate((owner == k).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) for k in ids]
    touching += any(np.any(grown[ids.index(a)] & (owner == b)) for a, b in pairs)
  assert with_look_alikes >= 24  # most scenes
  assert touching >= 12


def test_camera_depth_separates_objects_that_colour_does_not():
  # The region around the object's deepest pixel where the true depth is within half a contact
  # gap of the click's finds the object; an oracle colour threshold does much worse.
  from scipy import ndimage
  ev = procedural.ProceduralEvalSource(
      procedural.ProceduralScenes(num_scenes=24, seed=0, split="val", size=(120, 160)))
  depth_iou, colour_iou = [], []
  for i in range(len(ev)):
    s = ev[i]
    gt = s["gt"] == 1
    y, x = _deepest_point(gt)
    labels, _ = ndimage.label(np.abs(s["depth"] - s["depth"][y, x]) < 1e-4)
    depth_iou.append(_iou(labels == labels[y, x], gt))
    image = cv2.GaussianBlur(s["image"].astype(np.float32), (5, 5), 0)
    colour_dist = np.linalg.norm(image - image[gt].mean(0), axis=-1)
    colour_iou.append(max(_iou(colour_dist < t, gt) for t in np.linspace(2, 80, 40)))
  assert np.mean(depth_iou) > 0.85
  assert np.mean(colour_iou) < np.mean(depth_iou) - 0.25

