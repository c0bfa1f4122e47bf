"""Are the procedural scenes colour-ambiguous? A flood-fill segmenter under the standard protocol.

The segmenter sees only the clicks and one map: the image's colour (`--map colour`) or, for
comparison, the scenes' true depth (`--map depth`). Positive clicks flood-fill the connected
region whose values stay within a tolerance of the clicked pixel's (OpenCV floodFill, fixed
range); negative clicks flood-fill too and their regions are removed. Clicks come from the
protocol's oracle (`evaluation.clicker.next_click`), IoU and NoC / mIoU as in `ois-jax evaluate`
(20 clicks, 100 held-out scenes of the quickstart). Every tolerance (and blur) of a grid is run
and all are reported, so the colour baseline gets its best setting chosen on the test scenes.

  python -m ois_jax.proj.miniature.experiments.colour_baseline --map colour --samples 100
  python -m ois_jax.proj.miniature.experiments.colour_baseline --map depth --samples 100

Prints JSON: per setting NoC85/90/95, mIoU@1/5/20, and the best setting by NoC90.
"""

import argparse
import json

import cv2
import numpy as np

from ois_jax.proj.miniature import recipe
from ois_jax.evaluation import clicker, metrics

COLOUR_TOLERANCES = (4, 8, 12, 16, 24, 32, 48)
COLOUR_BLURS = (0, 3, 5)
DEPTH_TOLERANCES = (0.005, 0.01, 0.02, 0.03, 0.05)


def flood(values: np.ndarray, seed: tuple[int, int], tolerance: float) -> np.ndarray:
  """(H, W) bool: the 4-connected region around seed (y, x) within `tolerance` of its value(s)."""
  h, w = values.shape[:2]
  mask = np.zeros((h + 2, w + 2), np.uint8)
  channels = 1 if values.ndim == 2 else values.shape[2]
  diff = (tolerance,) * channels
  flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
  cv2.floodFill(values, mask, (int(seed[1]), int(seed[0])), 0, diff, diff, flags)
  return mask[1:-1, 1:-1].astype(bool)


def run_protocol(values: np.ndarray, gt: np.ndarray, tolerance: float, max_clicks: int) -> np.ndarray:
  """(max_clicks,) IoU after each click of the flood-fill segmenter."""
  pred = np.zeros(gt.shape, bool)
  clicked = np.zeros(gt.shape, bool)
  positive, negative = np.zeros(gt.shape, bool), np.zeros(gt.shape, bool)
  ious = []
  for _ in range(max_clicks):
    y, x, is_positive = clicker.next_click(gt, pred, clicked)
    clicked[y, x] = True
    region = flood(values, (y, x), tolerance)
    if is_positive:
      positive |= region
    else:
      negative |= region
    pred = positive & ~negative
    ious.append(clicker.iou(gt, pred))
  return np.asarray(ious)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--map", choices=("colour", "depth"), default="colour")
  p.add_argument("--samples", type=int, default=100)
  p.add_argument("--clicks", type=int, default=20)
  args = p.parse_args()
  _, config = recipe.build_configs()
  source = recipe.heldout_scenes(config, args.samples)
  samples = [source[i] for i in range(len(source))]
  if args.map == "colour":
    grid = [(t, b) for b in COLOUR_BLURS for t in COLOUR_TOLERANCES]
  else:
    grid = [(t, 0) for t in DEPTH_TOLERANCES]
  results = []
  for tolerance, blur in grid:
    rows = []
    for s in samples:
      if args.map == "colour":
        values = s["image"].astype(np.float32)
        if blur:
          values = cv2.GaussianBlur(values, (blur, blur), 0)
      else:
        values = s["depth"].astype(np.float32)
      rows.append(run_protocol(values, s["gt"].astype(np.int32), tolerance, args.clicks))
    m = metrics.summarize(np.stack(rows))
    results.append({"tolerance": tolerance, "blur": blur,
                    **{k: round(m[k], 4) for k in ("NoC85", "NoC90", "NoC95", "mIoU@1", "mIoU@5",
                                                   f"mIoU@{args.clicks}", "NoF90")}})
    print(json.dumps(results[-1]), flush=True)
  best = min(results, key=lambda r: (r["NoC90"], -r["mIoU@5"]))
  print(json.dumps({"map": args.map, "samples": len(samples), "clicks": args.clicks, "best": best},
                   indent=1))


if __name__ == "__main__":
  main()
