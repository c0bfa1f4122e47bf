"""How fine must the mask's grid be? The ground truth of each held-out scene is averaged over the
cells of a grid at the model input (the 14-px tokens, and finer grids), upsampled bilinearly,
mapped back to the scene's resolution and cut at 0.5: the best mask a decoder could draw if
the clicks reached it only on that grid. Reported: its IoU with the ground truth over the
quickstart's 100 held-out scenes.

  python -m ois_jax.proj.miniature.experiments.grid_ceiling
  python -m ois_jax.proj.miniature.experiments.grid_ceiling --cells 14 7 3.5 --samples 100

Prints JSON: for each cell size, the grid, the mean IoU and the share of scenes at 0.9 or more.
"""

import argparse
import json

import cv2
import numpy as np

from ois_jax import transforms
from ois_jax.proj.miniature import recipe


def grid_mask(gt: np.ndarray, size: int, cell: float) -> np.ndarray:
  """(H, W) bool ground truth -> the same, seen through a grid of `cell`-px cells at `size` px."""
  tf = transforms.make_transform(gt.shape, size)
  model = transforms.map_to_model(gt.astype(np.float32), tf)  # (size, size)
  grid = int(round(size / cell))
  pooled = cv2.resize(model, (grid, grid), interpolation=cv2.INTER_AREA)  # cell means
  smooth = cv2.resize(pooled, (size, size), interpolation=cv2.INTER_LINEAR)
  h, w = tf.resized_hw
  return cv2.resize(smooth[:h, :w], gt.shape[::-1], interpolation=cv2.INTER_LINEAR) > 0.5


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--cells", type=float, nargs="+", default=[14.0, 7.0, 3.5],
                 help="cell sizes in model pixels (14: the token grid; 3.5: refinenet1's grid)")
  p.add_argument("--samples", type=int, default=100)
  args = p.parse_args()
  from ois_jax.proj.miniature.configs import ois_tiny_procedural
  config = ois_tiny_procedural.get_config()
  size = int(config.model.input_size)
  samples = recipe.heldout_scenes(config, args.samples)
  out = []
  for cell in args.cells:
    ious = []
    for i in range(len(samples)):
      gt = samples[i]["gt"] == 1
      mask = grid_mask(gt, size, cell)
      ious.append(np.sum(mask & gt) / max(np.sum(mask | gt), 1))
    ious = np.asarray(ious)
    grid = int(round(size / cell))
    out.append({"cell_px": cell, "grid": f"{grid}x{grid}", "mean_iou": round(float(ious.mean()), 4),
                "share_at_0.9": round(float((ious >= 0.9).mean()), 2)})
  print(json.dumps({"input_size": size, "samples": len(samples), "grids": out}, indent=1))


if __name__ == "__main__":
  main()
