"""Stage 1's held-out score: the depth model on unaugmented 'val' scenes, its SSI error and a figure.

  heldout = heldout_depth(model, params, config)    # config: ois_jax/proj/miniature/configs/depth_tiny_procedural.py
  heldout["ssi"]                                    # 1.0 for a constant map, 0 for the truth
  plot_heldout_depth(heldout, "heldout_depth.png")
"""

import jax.numpy as jnp
import numpy as np

from ois_jax.training.ssi_loss import ssi_loss


def heldout_batch(config, num_scenes: int = 32) -> dict:
  """Held-out 'val' scenes at the model input, unaugmented: {'image' (N, S, S, 3) normalised,
  'rgb' (N, S, S, 3) uint8, 'depth' (N, S, S) true relative inverse depth, 'valid' (N, S, S)}."""
  from ois_jax import transforms
  from ois_jax.data_pipelines import procedural
  d = config.data
  size = int(config.model.input_size)
  scenes = procedural.scenes_from_config(d, "val", num_scenes, depth="true")  # scored on the truth
  out = {"image": [], "rgb": [], "depth": [], "valid": []}
  for i in range(num_scenes):
    rec = scenes[i]
    x, tf = transforms.preprocess(rec["image"], size)
    h, w = tf.resized_hw
    valid = np.zeros((size, size), bool)
    valid[:h, :w] = True
    out["image"].append(x)
    rgb = np.stack([transforms.map_to_model(rec["image"][..., c], tf) for c in range(3)], -1)
    out["rgb"].append(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    out["depth"].append(transforms.map_to_model(rec["depth"], tf))
    out["valid"].append(valid)
  return {k: np.stack(v) for k, v in out.items()}


def heldout_depth(model, params, config, num_scenes: int = 32) -> dict:
  """The model on held-out 'val' scenes (no augmentation), in one batch: `heldout_batch` plus
  'pred' (N, S, S) float32 and 'ssi', the mean SSI error (no gradient term). A constant
  prediction scores exactly 1.0 (the aligned target's mean absolute value)."""
  batch = heldout_batch(config, num_scenes)
  pred = model.forward(params, jnp.asarray(batch["image"]))
  ssi = float(ssi_loss(pred, jnp.asarray(batch["depth"]), jnp.asarray(batch["valid"])))
  return dict(batch, pred=np.asarray(pred, np.float32), ssi=ssi)


def heldout_depth_error(model, params, config, num_scenes: int = 32) -> float:
  """`heldout_depth(...)['ssi']`."""
  return heldout_depth(model, params, config, num_scenes)["ssi"]


def plot_heldout_depth(heldout: dict, path: str, num_scenes: int = 6) -> str:
  """A figure of the first `num_scenes` scenes of `heldout_depth`'s result, one per row: the
  image, its true relative inverse depth, the model's prediction (each map min-max scaled over
  the image's content)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(num_scenes, 3, figsize=(6, 2 * num_scenes), dpi=100, squeeze=False)
  for row in range(num_scenes):
    valid = heldout["valid"][row]
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    maps = [heldout[key][row][crop] for key in ("rgb", "depth", "pred")]
    for col, (image, title) in enumerate(zip(maps, ("image", "true depth", "stage-1 depth"))):
      ax = axes[row, col]
      grey = {} if col == 0 else dict(cmap="gray", vmin=image.min(), vmax=image.max())
      ax.imshow(image, **grey)
      ax.set_xticks([])
      ax.set_yticks([])
      if row == 0:
        ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return path
