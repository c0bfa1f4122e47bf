"""Metric functions against hand-computed cases, and the report writers."""

import json
import math

import numpy as np
import pytest

from ois_jax.evaluation import metrics, report


IOUS = np.array([
    [0.50, 0.86, 0.91, 0.96],  # NoC85 2, NoC90 3, NoC95 4 (reaches 0.95 exactly on the LAST click)
    [0.95, 0.97, 0.97, 0.97],  # 1, 1, 1
    [0.10, 0.20, 0.84, 0.899],  # never 85: 4, 4, 4
    [0.90, 0.80, 0.85, 0.95],  # 0.90 at click 1 exactly; 85 -> 1; 95 at the last click -> 4
])


def test_noc_hand_cases():
  np.testing.assert_array_equal(metrics.noc(IOUS, 0.85), [2, 1, 4, 1])
  np.testing.assert_array_equal(metrics.noc(IOUS, 0.90), [3, 1, 4, 1])
  np.testing.assert_array_equal(metrics.noc(IOUS, 0.95), [4, 1, 4, 4])


def test_nof_counts_reaching_threshold_on_last_click():
  assert metrics.nof(IOUS, 0.85) == 1
  assert metrics.nof(IOUS, 0.90) == 1
  # samples 0 and 3 reach 0.95 exactly on click 4 = max clicks: they count as failures too
  assert metrics.nof(IOUS, 0.95) == 3


def test_summarize_hand_values():
  m = metrics.summarize(IOUS, spc=0.031)
  assert m["NoC85"] == pytest.approx((2 + 1 + 4 + 1) / 4)
  assert m["NoC90"] == pytest.approx((3 + 1 + 4 + 1) / 4)
  assert m["NoC95"] == pytest.approx((4 + 1 + 4 + 4) / 4)
  assert (m["NoF85"], m["NoF90"], m["NoF95"]) == (1, 1, 3)
  assert m["mIoU@1"] == pytest.approx((0.5 + 0.95 + 0.1 + 0.9) / 4)
  assert m["mIoU@4"] == pytest.approx((0.96 + 0.97 + 0.899 + 0.95) / 4)
  assert "mIoU@5" not in m and m["max_clicks"] == 4 and m["num_samples"] == 4
  assert m["SPC"] == pytest.approx(0.031)


def test_summarize_empty_is_nan_not_crash():
  m = metrics.summarize(np.zeros((0, 20)))
  assert math.isnan(m["NoC90"]) and m["NoF95"] == 0 and math.isnan(m["mIoU@20"])


def test_grid_clicks():
  pts = metrics.grid_clicks(160, 320, 16)
  assert pts.shape == (256, 2)
  assert pts[0].tolist() == [5, 10] and pts[-1].tolist() == [155, 310]
  assert len({tuple(p) for p in pts}) == 256


def test_table_and_compare(tmp_path):
  a = metrics.summarize(IOUS, 0.01)
  b = metrics.summarize(np.clip(IOUS + 0.05, 0, 1), 0.02)
  text = report.format_table([("A", a), ("B", b)])
  header = text.splitlines()[0]
  assert [h.strip() for h in header.split("|")][:7] == [
      "Method", "NoC85", "NoC90", "NoC95", "1-mIoU", "5-mIoU", "NoF95"]
  assert f"{100 * a['mIoU@1']:.2f}" in text.splitlines()[2]
  paths = []
  for name, m in (("a", a), ("b", b)):
    d = tmp_path / name
    d.mkdir()
    rec = dict(m, dataset="grabcut", checkpoint=f"/ck/{name}", config="tiny", skipped=[])
    paths.append(report.write_metrics(str(d), rec))
  table, table_path, plot_path = report.compare(paths, str(tmp_path / "cmp"))
  assert "a [grabcut]" in table and "b [grabcut]" in table
  assert open(plot_path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  assert json.load(open(paths[0]))["NoF95"] == 3
