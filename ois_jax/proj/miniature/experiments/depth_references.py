"""Reference points for the stage-1 held-out SSI error (ois_jax.proj.miniature.depth_pretrain): the
error of maps built from the held-out scenes' own layout, on the 32 scenes the quickstart scores.

  python -m ois_jax.proj.miniature.experiments.depth_references

Prints JSON: a constant map (exactly 1), the object-or-background map (the scenes' owner map),
the depth one image shows (`procedural.occlusion_depth`: each object at its occlusion rank),
the true depth averaged over each 14 x 14 patch and over each 7 x 7 block, and the true depth (0).
"""

import json

import jax.numpy as jnp
import numpy as np

from ois_jax import transforms
from ois_jax.proj.miniature.configs import depth_tiny_procedural
from ois_jax.data_pipelines import procedural
from ois_jax.proj.miniature import depth_eval, depth_pretrain as dp


def block_mean(maps: np.ndarray, block: int) -> np.ndarray:
  """(N, S, S) -> the mean over each block x block cell, repeated back to (N, S, S)."""
  n, s, _ = maps.shape
  cells = maps.reshape(n, s // block, block, s // block, block).mean((2, 4))
  return cells.repeat(block, 1).repeat(block, 2)


def main():
  config = depth_tiny_procedural.get_config()
  batch = depth_eval.heldout_batch(config)
  d = config.data
  scenes = procedural.scenes_from_config(d, "val", len(batch["depth"]), depth="true")
  size = int(config.model.input_size)
  objects, occlusion = [], []
  for i in range(len(scenes)):
    _, tf = transforms.preprocess(scenes[i]["image"], size)
    layout = scenes.layout(i)
    objects.append(transforms.map_to_model((layout["owner"] >= 0).astype(np.float32), tf))
    occlusion.append(transforms.map_to_model(procedural.occlusion_depth(layout), tf))
  true, valid = batch["depth"], jnp.asarray(batch["valid"])
  error = lambda maps: round(float(dp.ssi_loss(jnp.asarray(maps), jnp.asarray(true), valid)), 4)
  print(json.dumps({"constant": error(np.zeros_like(true)), "object_or_background": error(np.stack(objects)),
                    "occlusion_depth": error(np.stack(occlusion)),
                    "true_depth_per_14px_patch": error(block_mean(true, 14)),
                    "true_depth_per_7px_block": error(block_mean(true, 7)), "true_depth": error(true)},
                   indent=1))


if __name__ == "__main__":
  main()
