"""`evaluate` with a fake model: skipped samples, ordering, batching and averages."""

import math

import numpy as np
import pytest
from scipy import ndimage

from ois_jax.errors import DataError
from ois_jax.evaluation import evaluate, evaluator, metrics, reference, report


import fake_model  # tests/evaluation/fake_model.py (on sys.path via tests/conftest.py)


def _good(rng, name, h, w):
  gt = (ndimage.uniform_filter(rng.random((h, w)), 9) > 0.5).astype(np.int8)
  gt[0, 0] = 1
  image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
  return {"image": image, "gt": gt, "name": name}


class Source:
  """A random-access source whose item 3 cannot be read (like a corrupt file)."""

  def __init__(self, items):
    self.items = items

  def __len__(self):
    return len(self.items)

  def __getitem__(self, i):
    if self.items[i] is None:
      raise DataError(f"broken_{i}.jpg: cannot identify image file")
    return self.items[i]


@pytest.fixture(scope="module")
def runner():
  return evaluator.ClickLoopRunner(None, fake_model.config(), max_clicks=5,
                                   fns=fake_model.FNS)


def test_skipped_samples_reported_and_averages_unaffected(tmp_path):
  rng = np.random.default_rng(5)
  good = [_good(rng, f"g{i}", int(h), int(w)) for i, (h, w) in
          enumerate(rng.integers(20, 70, (5, 2)))]
  empty = _good(rng, "empty_mask", 30, 30)
  empty["gt"][:] = 0
  mismatch = _good(rng, "size_mismatch", 30, 30)
  mismatch["gt"] = mismatch["gt"][:, :20]
  items = [good[0], empty, good[1], None, mismatch, good[2], good[3], good[4]]
  cfg = fake_model.config()

  class Dataset:  # an EvalDataset: its own skipped list is carried over
    source = Source(items)
    skipped = [("corrupt.png", "cannot identify image file")]

  with_bad = evaluate(None, fake_model.PARAMS, cfg, Dataset(), batch_size=2, max_clicks=5,
                      progress=False, fns=fake_model.FNS, canvas_multiple=128)
  clean = evaluate(None, fake_model.PARAMS, cfg, good, batch_size=3, max_clicks=5,
                   progress=False, fns=fake_model.FNS, canvas_multiple=128)
  assert with_bad.names == [g["name"] for g in good] == clean.names
  np.testing.assert_array_equal(with_bad.ious, clean.ious)
  skipped = dict(with_bad.skipped)
  assert set(skipped) == {"corrupt.png", "empty_mask", "#3", "size_mismatch"}
  assert "empty ground-truth" in skipped["empty_mask"]
  assert "size mismatch" in skipped["size_mismatch"] and "30x20" in skipped["size_mismatch"]
  assert "broken_3.jpg" in skipped["#3"]
  for key in ("NoC85", "NoC90", "NoC95", "mIoU@1", "mIoU@5", "NoF95"):
    assert with_bad.metrics[key] == clean.metrics[key]
  assert with_bad.metrics == {**metrics.summarize(with_bad.ious, with_bad.metrics["SPC"]),
                              "num_skipped": 4}
  record = report.metrics_record(with_bad, "fake", None, "fake")
  path = report.write_metrics(str(tmp_path), record)
  back = report.read_metrics(path)
  assert {s["name"] for s in back["skipped"]} == set(skipped)
  assert back["num_samples"] == 5 and back["SPC"] > 0


def test_every_sample_skipped_gives_empty_result():
  rng = np.random.default_rng(1)
  bad = _good(rng, "e", 20, 20)
  bad["gt"][:] = 0
  res = evaluate(None, fake_model.PARAMS, fake_model.config(), [bad], batch_size=2, max_clicks=5,
                 progress=False, fns=fake_model.FNS, canvas_multiple=128)
  assert res.names == [] and res.ious.shape == (0, 5) and len(res.skipped) == 1
  assert math.isnan(res.metrics["NoC90"])


def test_sat_grid_of_single_clicks(runner):
  image = np.full((40, 56, 3), 128, np.uint8)  # flat image: the fake model's mask is the click disk
  segment = reference.make_sat_fn(runner, fake_model.PARAMS, image, grid=16, chunk=100)
  masks = np.asarray(segment())
  assert masks.shape == (256, 40, 56)
  points = metrics.grid_clicks(40, 56, 16)
  # Each prompt's mask contains its own click and not the farthest grid point.
  assert all(masks[i, y, x] for i, (y, x) in enumerate(points))
  assert not masks[0, points[-1][0], points[-1][1]]
  timing = metrics.sat_latency(segment, repeats=2)
  assert timing["SAT"] > 0 and len(timing["SAT_runs"]) == 2
