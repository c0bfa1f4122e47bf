"""Stage 2 of the quickstart recipe on a given depth checkpoint (e.g. a longer-trained stage-1
model from experiments/depth_curve.py), evaluated with the standard protocol on the quickstart's
100 held-out scenes. Prints JSON: the training IoU / loss trajectory and the held-out metrics.

  python -m ois_jax.proj.miniature.experiments.recipe_stage2 --depth runs/depth_curve/step3000 --workdir runs/s2_order \
      --config.total_steps=1500
  python -m ois_jax.proj.miniature.experiments.recipe_stage2 --depth runs/depth_curve/step3000 --workdir runs/s2_no_order \
      --config.total_steps=1500 --no-order

The OIS encoder sizes come from the checkpoint; --config.KEY=VALUE overrides ois_jax/proj/miniature/configs/ois_tiny_procedural.py.
"""

import argparse
import json
import time

import jax
import numpy as np

from ois_jax.proj.miniature import recipe
from ois_jax.config import apply_overrides, parse_with_overrides
from ois_jax.proj.miniature.configs import ois_tiny_procedural
from ois_jax.evaluation import evaluate
from ois_jax.models import ois
from ois_jax.models.depth import load_depth_model
from ois_jax.training import trainer


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--depth", required=True, help="converted DAv2 checkpoint folder (custom size)")
  p.add_argument("--workdir", required=True)
  p.add_argument("--no-order", action="store_true", help="the use_order=False ablation")
  args = parse_with_overrides(p)  # --config.KEY=VALUE overrides in args.set
  _, depth_config, _ = load_depth_model(args.depth)
  config = ois_tiny_procedural.get_config()
  config.model.update(depth_config.sizes.model_config_keys(depth_config.input_size))
  apply_overrides(config, args.set)
  config = recipe.variant_config(config, args.depth, not args.no_order)
  start, cpu_start = time.time(), time.process_time()
  summary = trainer.train(config, args.workdir, quiet=True, log=lambda *a: None)
  out = {"depth": args.depth, "set": args.set, "use_order": not args.no_order,
         "wall_s": round(time.time() - start), "cpu_s": round(time.process_time() - cpu_start)}
  history = summary["history"]
  chunk = max(1, len(history) // 8)
  out["train_iou"] = [round(float(np.mean([h["iou"] for h in history[i:i + chunk]])), 3)
                      for i in range(0, len(history), chunk)]
  params = jax.device_get(summary["state"]["params"])
  samples = recipe.heldout_scenes(config, 100)
  metrics = evaluate(ois.build_model(config.model), params, config, samples, progress=False).metrics
  out["heldout"] = {k: round(metrics[k], 4) for k in ("NoC85", "NoC90", "NoC95", "mIoU@1", "mIoU@5",
                                                       "mIoU@20", "NoF90")}
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
