"""Regenerates the bundled model `ois-tiny-procedural` (ois_jax/pretrained/ois-tiny-procedural/).

It is the quickstart's trained model: stages 1-2 of `ois-jax quickstart` with its default settings
and fixed seed (the depth model, then OIS with the order path), evaluated on the quickstart's 100
held-out procedural scenes (20 clicks). The folder holds the self-describing OIS checkpoint
(`ois_jax.checkpoint.save_checkpoint(dir, params, config)`) and `model_card.json` with what the
model is and its measured held-out metrics.

  python scripts/make_bundled_model.py --workdir runs/bundle          # then commit the folder
  python scripts/make_bundled_model.py --workdir quickstart_run       # reuse a finished quickstart

A quickstart workdir of the default settings is reused as it is (nothing is retrained); the
output folder is replaced only with --overwrite.
"""

import argparse
import copy
import datetime
import json
import os
import platform
import shutil

import jax
import numpy as np

from ois_jax import checkpoint, records
from ois_jax.proj.miniature import recipe
from ois_jax.evaluation import evaluate

NAME = "ois-tiny-procedural"
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "..", "ois_jax", "pretrained", NAME)
CARD_FILE = "model_card.json"
MAX_BYTES = 5 * 2**20


def folder_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", default="runs/bundle", help="where stages 1-2 run (or ran)")
  p.add_argument("--out", default=DEFAULT_OUT)
  p.add_argument("--overwrite", action="store_true")
  args = p.parse_args()
  out = os.path.abspath(args.out)
  if os.path.exists(out) and not args.overwrite:
    raise SystemExit(f"{out}: already exists; pass --overwrite to replace it")

  depth, config = recipe.build_configs()
  eval_samples, max_clicks = 100, 20
  settings = recipe.settings_record(depth, config, eval_samples, max_clicks)
  workdir = recipe.prepare_workdir(args.workdir, settings)
  depth_ckpt = recipe.stage1(workdir, depth)
  model, trained_config, params = recipe.stage2(workdir, config, depth_ckpt, use_order=True)
  samples = recipe.heldout_scenes(config, eval_samples)
  # Stored as float16 (half the size; the fp32 weights are over the 5 MB budget) and loaded back
  # as float32 by `checkpoint.load_weights`: the card's metrics are those of the rounded weights.
  stored = jax.tree.map(lambda x: np.asarray(x, np.float16), params)
  m = evaluate(model, checkpoint.as_float32(stored), trained_config, samples, max_clicks=max_clicks).metrics
  m32 = evaluate(model, params, trained_config, samples, max_clicks=max_clicks).metrics

  shipped = copy.deepcopy(trained_config)
  shipped.model.depth_checkpoint = ""  # the weights are all in the checkpoint; no local paths
  shipped.data_dir = ""
  staging = out + ".tmp"
  shutil.rmtree(staging, ignore_errors=True)
  checkpoint.save_checkpoint(staging, stored, shipped)
  card = {
      "name": NAME,
      "what": ("OIS (order-aware interactive segmentation) at a tiny size, trained by `ois-jax quickstart` "
               "on the procedural depth scenes of ois_jax.data_pipelines.procedural: a model of that "
               "procedural world, not of photographs (photographs need real DepthAnythingV2 weights and "
               "real training data, see the README)."),
      "recipe": {"stage1": "DepthAnythingV2 custom size (ois_jax/proj/miniature/configs/depth_tiny_procedural.py), "
                           f"{depth.total_steps} steps, scale-and-shift-invariant loss",
                 "stage2": f"OIS (ois_jax/proj/miniature/configs/ois_tiny_procedural.py), {config.total_steps} steps, encoder "
                           "and depth head frozen, order maps from the depth head",
                 "seed": int(config.seed)},
      "input_size": int(config.model.input_size),
      "weights": "float16, rounded from the float32 training weights (loaded as float32)",
      "heldout": {"dataset": "procedural val split (quickstart held-out scenes)",
                  "samples": int(m["num_samples"]), "max_clicks": max_clicks,
                  **{k: round(float(m[k]), 4) for k in ("NoC85", "NoC90", "NoC95", "mIoU@1", "mIoU@5")},
                  "NoF90": int(m["NoF90"])},
      "heldout_float32_weights": {k: round(float(m32[k]), 4)
                                  for k in ("NoC85", "NoC90", "NoC95", "mIoU@1", "mIoU@5")},
      "made_with": {"command": "python scripts/make_bundled_model.py",
                    "date": datetime.date.today().isoformat(), "jax": jax.__version__,
                    "backend": jax.default_backend(), "machine": platform.machine()},
  }
  with open(os.path.join(staging, CARD_FILE), "w") as f:
    json.dump(card, f, indent=1)
  size = folder_bytes(staging)
  if size > MAX_BYTES:
    shutil.rmtree(staging)
    raise SystemExit(f"the bundled model would take {size / 2**20:.2f} MB, over the 5 MB limit")
  records.publish_folder(staging, out)
  print(json.dumps({"out": out, "bytes": size, "heldout": card["heldout"]}, indent=1))


if __name__ == "__main__":
  main()
