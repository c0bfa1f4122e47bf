"""Which held-out objects does a trained quickstart-recipe model fail? Evaluates a training
workdir (e.g. one of experiments/recipe_stage2.py) with the standard protocol on the quickstart's
held-out scenes, and splits the objects that never reach 90 % IoU within the clicks by object
area (pixels at the scene's 120 x 160).

  python -m ois_jax.proj.miniature.experiments.failures_by_area --checkpoint runs/s2_order
  python -m ois_jax.proj.miniature.experiments.failures_by_area --checkpoint runs/s2_occ --config.data.procedural_depth=occlusion

--config.KEY=VALUE overrides the workdir's config before the held-out scenes are built (the depth the samples
carry must be the one the model was trained with). Prints JSON: NoC90, NoF90 (which, as in the
field's code, also counts an object first reaching 90 % at the last click), never_90 (the
objects that never reach it), the mean IoU after each click, and for each area bucket the object
count, how many never reach 90 % and their mean best IoU.
"""

import argparse
import copy
import json

import numpy as np

from ois_jax.proj.miniature import recipe
from ois_jax.config import apply_overrides, parse_with_overrides
from ois_jax.evaluation import evaluate
from ois_jax.predictor import Predictor

AREA_EDGES = (0, 300, 600, 1200, 3000, 10 ** 9)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--checkpoint", required=True, help="a training workdir, an export folder or one step")
  p.add_argument("--samples", type=int, default=100)
  args = parse_with_overrides(p)  # --config.KEY=VALUE overrides in args.set
  predictor = Predictor.from_checkpoint(args.checkpoint)
  config = apply_overrides(copy.deepcopy(predictor.config), args.set)
  samples = recipe.heldout_scenes(config, args.samples)
  result = evaluate(predictor.model, predictor.params, config, samples, progress=False)
  areas = np.array([int(samples[i]["gt"].sum()) for i in range(len(samples))])
  best = result.ious.max(1)
  failed = best < 0.9
  buckets = []
  for lo, hi in zip(AREA_EDGES[:-1], AREA_EDGES[1:]):
    inside = (areas >= lo) & (areas < hi)
    if inside.any():
      buckets.append({"area": f"[{lo}, {hi})" if hi < AREA_EDGES[-1] else f">= {lo}",
                      "objects": int(inside.sum()), "never_90": int((failed & inside).sum()),
                      "mean_best_iou": round(float(best[inside].mean()), 4)})
  print(json.dumps({"checkpoint": args.checkpoint, "NoC90": round(result.metrics["NoC90"], 4),
                    "NoF90": int(result.metrics["NoF90"]), "never_90": int(failed.sum()),
                    "miou_per_click": [round(float(v), 4) for v in result.ious.mean(0)],
                    "by_area": buckets}, indent=1))


if __name__ == "__main__":
  main()
