"""How much do the order maps tell about the clicked object? The positive order map of the first
click, |R - R(click)| (R min-max normalised as in ois_jax.models.order), used alone as a
segmenter: the connected region around the click where the map is below a threshold, with the
best threshold for each scene (an oracle: an upper bound on what the map alone says). Reported:
its IoU with the target at the model input (112 px), over the quickstart's 100 held-out scenes.
R is the scenes' true depth (`--depth true`), the depth one image shows (`--depth occlusion`: each
object at its occlusion rank, data_pipelines.procedural.occlusion_depth) or a depth model's
prediction (a converted DAv2 checkpoint folder); `--depth distance` uses the distance to the click instead (the best disk
around the click: the floor a depth map must beat to carry information about the object).

  python -m ois_jax.proj.miniature.experiments.order_maps --depth true
  python -m ois_jax.proj.miniature.experiments.order_maps --depth occlusion
  python -m ois_jax.proj.miniature.experiments.order_maps --depth distance
  python -m ois_jax.proj.miniature.experiments.order_maps --depth quickstart_run/depth/checkpoint
  python -m ois_jax.proj.miniature.experiments.order_maps --depth true --input-size 224
  python -m ois_jax.proj.miniature.experiments.order_maps --depth true --blur 1   # how sharp must R be?

`--blur SIGMA` (a Gaussian blur, in model pixels), `--pool GRID` (R averaged on a GRID x GRID grid,
then upsampled bilinearly: what a depth at the token grid alone would give) and `--noise FRAC`
(Gaussian noise of FRAC times R's range, seeded per scene) degrade R before the order map.

Prints JSON: mean and median best IoU, and the share of scenes with best IoU >= 0.9.
"""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax import transforms
from ois_jax.proj.miniature import recipe
from ois_jax.evaluation import clicker
from ois_jax.models import order


def best_region_iou(scores: np.ndarray, target: np.ndarray, click: tuple[int, int],
                    levels: int = 48) -> float:
  """Max over thresholds of the IoU of {scores <= t} (the component holding the click) with target."""
  from scipy import ndimage
  best = 0.0
  for t in np.quantile(scores, np.linspace(0.0, 1.0, levels)):
    labels, _ = ndimage.label(scores <= t)
    region = labels == labels[click]
    inter, union = np.sum(region & target), np.sum(region | target)
    best = max(best, float(inter / max(union, 1)))
  return best


def degrade(d: np.ndarray, blur: float = 0.0, pool: int = 0, noise: float = 0.0,
            seed: int = 0) -> np.ndarray:
  """(S, S) depth -> (S, S): blurred, pooled to a pool x pool grid and upsampled, and noised."""
  from scipy import ndimage
  d = np.asarray(d, np.float32)
  if blur:
    d = ndimage.gaussian_filter(d, blur)
  if pool:
    cell = d.shape[0] // pool
    coarse = d[:pool * cell, :pool * cell].reshape(pool, cell, pool, cell).mean((1, 3))
    d = np.asarray(jax.image.resize(jnp.asarray(coarse), d.shape, "bilinear"))
  if noise:
    d = d + np.random.default_rng(seed).normal(0.0, noise * float(np.ptp(d)), d.shape).astype(np.float32)
  return d


def order_map_scores(depth: str, samples: int = 100, input_size: int | None = None,
                     blur: float = 0.0, pool: int = 0, noise: float = 0.0) -> dict:
  """The JSON record of the module docstring for one --depth choice (degraded as `degrade` says)."""
  _, config = recipe.build_configs()
  size = int(config.model.input_size)
  model = params = None
  if depth == "occlusion":
    config.data.procedural_depth = "occlusion"   # the samples' 'depth'
  elif depth not in ("true", "distance"):
    from ois_jax.models.depth import load_depth_model
    model, depth_config, params = load_depth_model(depth)
    size = int(depth_config.input_size)
  size = input_size or size
  source = recipe.heldout_scenes(config, samples)
  ious = []
  for i in range(len(source)):
    s = source[i]
    x, tf = transforms.preprocess(s["image"], size)
    h, w = tf.resized_hw
    gt = s["gt"].astype(np.int32)
    y, x0, _ = clicker.next_click(gt, np.zeros(gt.shape, bool), np.zeros(gt.shape, bool))
    my, mx = np.round(tf.to_model_coords([y, x0])).astype(int)
    target = transforms.map_to_model(gt == 1, tf)[:h, :w] > 0.5
    if depth == "distance":
      yy, xx = np.mgrid[0:h, 0:w]
      scores = np.hypot(yy - my, xx - mx)
    else:
      if model is None:
        d = transforms.map_to_model(s["depth"], tf)
      else:
        d = np.asarray(model.forward(params, jnp.asarray(x)[None]))[0]
      d = degrade(d, blur, pool, noise, seed=i)
      r = np.asarray(order.normalize_depth(jnp.asarray(d)[None]))[0]
      scores = np.abs(r[:h, :w] - r[my, mx])
    ious.append(best_region_iou(scores, target, (my, mx)))
  ious = np.asarray(ious)
  return {"depth": depth, "input_size": size, "samples": len(ious),
          **({"blur": blur} if blur else {}), **({"pool": pool} if pool else {}),
          **({"noise": noise} if noise else {}),
          "best_iou_mean": round(float(ious.mean()), 4),
          "best_iou_median": round(float(np.median(ious)), 4),
          "share_ge_0.9": round(float((ious >= 0.9).mean()), 3)}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--depth", required=True,
                 help="'true', 'occlusion', 'distance' or a converted DAv2 checkpoint folder")
  p.add_argument("--samples", type=int, default=100)
  p.add_argument("--input-size", type=int, default=None,
                 help="model input (default: the checkpoint's, else the quickstart's)")
  p.add_argument("--blur", type=float, default=0.0, help="Gaussian blur of R, sigma in model pixels")
  p.add_argument("--pool", type=int, default=0, help="R averaged on a POOL x POOL grid, then upsampled")
  p.add_argument("--noise", type=float, default=0.0, help="noise of this fraction of R's range")
  args = p.parse_args()
  print(json.dumps(order_map_scores(args.depth, args.samples, args.input_size, args.blur, args.pool,
                                    args.noise)))


if __name__ == "__main__":
  main()
