"""End to end with the real tiny OIS config: jitted loop == host loop, and `ois-jax evaluate` on GrabCut."""

import csv
import json

import jax
import numpy as np
import pytest
from scipy import ndimage

from ois_jax.configs import ois_tiny
from ois_jax.cli import compare as compare_cli
from ois_jax.cli import evaluate as evaluate_cli
from ois_jax.errors import OISError
from ois_jax.evaluation import evaluator, reference
from ois_jax.models import ois

import shared_data


@pytest.fixture(scope="module")
def tiny():
  config = ois_tiny.get_config()
  model = ois.build_model(config.model)
  params = ois.init_params(model, jax.random.PRNGKey(config.seed))
  return model, params, config


def test_tiny_model_jitted_loop_equals_host_loop(tiny):
  model, params, config = tiny
  runner = evaluator.ClickLoopRunner(model, config, max_clicks=6)
  rng = np.random.default_rng(0)
  items = []
  for i, (h, w) in enumerate([(60, 90), (75, 50)]):
    gt = (ndimage.uniform_filter(rng.random((h, w)), 11) > 0.5).astype(np.int8)
    gt[rng.random((h, w)) < 0.02] = -1
    gt[5, :] = 1
    image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    image[gt == 1] = image[gt == 1] // 3
    items.append(evaluator.prepare({"image": image, "gt": gt, "name": f"t{i}"}, runner.input_size))
  images, batch = evaluator.make_batch(items, 2, (128, 128), runner.input_size)
  fast, _ = runner.run(params, images, batch)
  slow = reference.host_loop(runner, params, images, batch)
  np.testing.assert_array_equal(fast.ys, slow.ys)
  np.testing.assert_array_equal(fast.xs, slow.xs)
  np.testing.assert_array_equal(fast.positive, slow.positive)
  np.testing.assert_allclose(fast.ious, slow.ious, atol=1e-6)


def test_ois_jax_evaluate_grabcut(tmp_path, capsys):
  """The whole benchmark: all 50 GrabCut samples, 20 clicks each (about 90 s on 2 cores)."""
  GRABCUT = shared_data.require("GrabCut")
  out = tmp_path / "eval"
  argv = ["--config", "configs/ois_tiny.py", "--dataset", "grabcut", "--data-dir", GRABCUT,
          "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-progress"]
  assert evaluate_cli.main(argv) == 0
  printed = capsys.readouterr().out
  assert "NoC90" in printed and "1-mIoU" in printed
  record = json.load(open(out / "metrics.json"))
  keys = ["NoC85", "NoC90", "NoC95", "NoF85", "NoF90", "NoF95", "SPC", "dataset", "checkpoint",
          "config", "skipped"] + [f"mIoU@{k}" for k in range(1, 21)]
  for key in keys:
    assert key in record, key
  assert record["dataset"] == "grabcut" and record["num_samples"] == 50 and record["skipped"] == []
  assert 1 <= record["NoC90"] <= 20 and record["SPC"] > 0
  rows = list(csv.reader(open(out / "ious.csv")))
  assert len(rows) == 51 and rows[0][:21] == ["name"] + [f"iou@{k}" for k in range(1, 21)]
  ious = np.array([[float(v) for v in r[1:21]] for r in rows[1:]])
  assert record["mIoU@1"] == pytest.approx(ious[:, 0].mean(), abs=1e-6)
  assert record["mIoU@20"] == pytest.approx(ious[:, 19].mean(), abs=1e-6)
  # NoF90 counts the samples whose NoC90 is 20 (reaching 0.9 only at click 20 included).
  reached = ious >= 0.9
  failed = ~reached[:, :19].any(axis=1)
  assert record["NoF90"] == int(failed.sum())
  assert (out / "miou_vs_clicks.png").read_bytes()[:4] == b"\x89PNG"
  # An existing result is never overwritten silently.
  with pytest.raises(OISError, match="--overwrite"):
    evaluate_cli.main(argv)
  # Overlay of two runs.
  other = tmp_path / "other"
  other.mkdir()
  rec2 = dict(record, checkpoint="/ckpt/step_100")
  json.dump(rec2, open(other / "metrics.json", "w"))
  assert compare_cli.main([str(out / "metrics.json"), str(other), "--out", str(tmp_path / "cmp")]) == 0
  assert "step_100" in capsys.readouterr().out
  assert (tmp_path / "cmp" / "compare_miou.png").exists()
