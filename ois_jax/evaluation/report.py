"""Reports: the Table 1 console table, metrics.json, per-sample IoU CSV, mIoU-vs-clicks plots,
and the overlay of several metrics.json files (checkpoints, ablations) in one table and one plot."""

import csv
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from ois_jax import outputs

METRICS_FILE = "metrics.json"
CURVES_FILE = "ious.csv"
PLOT_FILE = "miou_vs_clicks.png"
COMPARE_TABLE = "compare.txt"
COMPARE_PLOT = "compare_miou.png"

# (header, metrics key, scale, format): the layout of the paper's Table 1, NoF85/90 appended.
COLUMNS = (
    ("NoC85", "NoC85", 1, "{:.2f}"), ("NoC90", "NoC90", 1, "{:.2f}"), ("NoC95", "NoC95", 1, "{:.2f}"),
    ("1-mIoU", "mIoU@1", 100, "{:.2f}"), ("5-mIoU", "mIoU@5", 100, "{:.2f}"),
    ("NoF95", "NoF95", 1, "{}"), ("NoF85", "NoF85", 1, "{}"), ("NoF90", "NoF90", 1, "{}"),
    ("SPC(ms)", "SPC", 1000, "{:.1f}"),
)


def _cell(m: dict, key: str, scale: float, fmt: str) -> str:
  value = m.get(key)
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "-"
  return fmt.format(value * scale if scale != 1 else value)


def format_table(rows: Sequence[tuple[str, dict]]) -> str:
  """rows: (method label, metrics dict) -> an aligned text table (mIoU in percent, SPC in ms)."""
  headers = ["Method"] + [c[0] for c in COLUMNS]
  body = [[label] + [_cell(m, key, scale, fmt) for _, key, scale, fmt in COLUMNS]
          for label, m in rows]
  widths = [max(len(r[i]) for r in [headers] + body) for i in range(len(headers))]
  line = lambda r: " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                              enumerate(zip(r, widths)))
  out = [line(headers), "-+-".join("-" * w for w in widths)]
  out += [line(r) for r in body]
  return "\n".join(out)


def jsonable(value):
  """A metric value as strict JSON takes it: NumPy scalars as Python numbers, NaN as None."""
  if isinstance(value, float) and math.isnan(value):
    return None  # strict JSON has no NaN
  if isinstance(value, (np.floating, np.integer)):
    return jsonable(value.item())
  return value


def metrics_record(result, dataset: str, checkpoint: str | None, config_name: str,
                   config: dict | None = None) -> dict:
  """The metrics.json content of an EvalResult."""
  record = {k: jsonable(v) for k, v in result.metrics.items()}
  record.update(dataset=dataset, checkpoint=checkpoint, config=config_name,
                skipped=[{"name": n, "reason": r} for n, r in result.skipped],
                seconds=round(float(result.seconds), 3))
  if config is not None:
    record["config_values"] = config
  return record


def write_metrics(out_dir: str, record: dict) -> str:
  path = os.path.join(out_dir, METRICS_FILE)
  return outputs.write_text(path, json.dumps(record, indent=2), what="metrics")


def read_metrics(path: str) -> dict:
  """A metrics.json file of `ois-jax evaluate` (or a folder holding one)."""
  from ois_jax.errors import DataError
  path, record = _read_json(path)
  if not isinstance(record, dict) or "mIoU@1" not in record:
    raise DataError(f"{path}: not an ois-jax metrics.json of one model (no mIoU@1)")
  return record


def read_metric_rows(path: str) -> list[tuple[str, dict]]:
  """(label, metrics) rows of a metrics.json (or a folder holding one): one row for a file of
  `ois-jax evaluate`, one per model for a file of `ois-jax quickstart` ({"metrics": {label:
  metrics}, "settings": ...})."""
  from ois_jax.errors import DataError
  path, record = _read_json(path)
  if isinstance(record, dict) and "mIoU@1" in record:
    return [(label_of(record, path), record)]
  models = record.get("metrics") if isinstance(record, dict) else None
  if isinstance(models, dict) and models and all(
      isinstance(m, dict) and "mIoU@1" in m for m in models.values()):
    run = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return [(f"{label} [{run}]", m) for label, m in models.items()]
  raise DataError(f"{path}: not an ois-jax metrics.json (no mIoU@1, and no per-model metrics "
                  "of a quickstart run)")


def _read_json(path: str) -> tuple[str, Any]:
  from ois_jax.errors import DataError
  if os.path.isdir(path):
    path = os.path.join(path, METRICS_FILE)
  try:
    with open(path) as f:
      return path, json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise DataError(f"{path}: cannot read metrics ({e})") from None


def write_curves(out_dir: str, result) -> str:
  """Per-sample IoU after each click, plus the clicks: name, iou@1..K, click@1..K as y:x:+/-."""
  path = os.path.join(out_dir, CURVES_FILE)
  k = result.ious.shape[1]
  with outputs.writing(path, what="curves") as tmp, open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["name"] + [f"iou@{i}" for i in range(1, k + 1)] +
                    [f"click@{i}" for i in range(1, k + 1)])
    for name, ious, clicks in zip(result.names, result.ious, result.clicks):
      cells = [f"{y}:{x}:{'+' if p else '-'}" for y, x, p in clicks]
      writer.writerow([name] + [f"{v:.6f}" for v in ious] + cells)
  return path


def miou_curve(record: dict) -> np.ndarray:
  k = int(record.get("max_clicks") or sum(1 for key in record if key.startswith("mIoU@")))
  return np.array([np.nan if record.get(f"mIoU@{i}") is None else record[f"mIoU@{i}"]
                   for i in range(1, k + 1)], np.float64)


def plot_curves(path: str, curves: Sequence[tuple[str, np.ndarray]], title: str = "") -> str:
  """mIoU (percent) vs number of clicks, one line per (label, curve)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import matplotlib.ticker
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  for label, curve in curves:
    ax.plot(np.arange(1, len(curve) + 1), 100 * np.asarray(curve), marker="o", ms=3, label=label)
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  ax.set_xlabel("number of clicks")
  ax.set_ylabel("mIoU (%)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  try:
    with outputs.writing(path, what="plot") as tmp:
      fig.savefig(tmp, format=os.path.splitext(path)[1].lstrip(".").lower() or "png")
  finally:
    plt.close(fig)
  return path


def label_of(record: dict, fallback: str) -> str:
  ckpt = record.get("checkpoint")
  base = os.path.basename(os.path.normpath(ckpt)) if ckpt else f"{record.get('config', '?')} (init)"
  return f"{base} [{record.get('dataset', '?')}]" if record.get("dataset") else fallback or base


def compare(paths: Sequence[str], out_dir: str) -> tuple[str, str, str]:
  """Overlay several metrics.json files: returns (table text, table path, plot path)."""
  rows = [(p, label, r) for p in paths for label, r in read_metric_rows(p)]
  records = [(p, r) for p, _, r in rows]
  labels = [label for _, label, _ in rows]
  # Identical labels (same checkpoint name on two runs): the file paths tell them apart.
  if len(set(labels)) < len(labels):
    labels = [f"{label} ({p})" for p, label, _ in rows]
  table = format_table([(label, r) for label, (_, r) in zip(labels, records)])
  table_path = outputs.write_text(os.path.join(out_dir, COMPARE_TABLE), table + "\n", what="--out")
  plot_path = plot_curves(os.path.join(out_dir, COMPARE_PLOT),
                          [(label, miou_curve(r)) for label, (_, r) in zip(labels, records)],
                          "mIoU vs clicks")
  return table, table_path, plot_path
