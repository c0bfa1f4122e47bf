"""Stage 1 of the recipe in miniature: a small DepthAnythingV2 trained for relative inverse depth.

The model is the DepthAnythingV2 architecture (`ois_jax.models.depth`, DINOv2 ViT + DPT head) at a
custom size, trained from random weights on the procedural scenes (`data_pipelines.procedural`,
which carry their true relative inverse depth) with the scale-and-shift-invariant loss of MiDaS /
DepthAnythingV2. Every parameter is trained (encoder and head). The result is saved as a converted
DAv2 checkpoint (`ois_jax.checkpoint.save_checkpoint(dir, params, DepthConfig(...))`), so OIS
training loads it through `model.depth_checkpoint`, the path real DAv2 weights take.

  config = depth_tiny_procedural.get_config()
  summary = train_depth(config, "runs/depth")       # -> runs/depth/checkpoint, loadable by
  model, depth_config, params = load_depth_model("runs/depth/checkpoint")  # models.depth

Fixed step count and seed: the same config gives the same weights on any machine of one backend.
The input pipeline is the OIS training one's per-sample part (grain, `augment.augment`: flips,
rot90, resize 0.75-1.40, shift/scale/rotate, colour), so the encoder sees what stage 2 shows it.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ois_jax.errors import CheckpointError

CHECKPOINT_DIR = "checkpoint"   # the converted-DAv2 checkpoint inside a stage-1 workdir
SUMMARY_FILE = "depth_summary.json"
FIGURE_FILE = "heldout_depth.png"  # held-out scenes: image, true depth, the model's depth
_EPS = 1e-6


# --- the scale-and-shift-invariant loss ---------------------------------------------------------
def masked_median(x: jax.Array, valid: jax.Array) -> jax.Array:
  """(B, N) values, (B, N) bool -> (B,) median over the valid entries (mean of the two middle
  ones for an even count; 0 where none is valid)."""
  count = valid.sum(axis=-1)
  ordered = jnp.sort(jnp.where(valid, x, jnp.inf), axis=-1)
  lo = jnp.take_along_axis(ordered, jnp.maximum(count - 1, 0)[:, None] // 2, axis=-1)[:, 0]
  hi = jnp.take_along_axis(ordered, (count // 2)[:, None], axis=-1)[:, 0]
  return jnp.where(count > 0, 0.5 * (lo + hi), 0.0)


def shift_and_scale(d: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(B, H, W) maps -> t (B,) the median and s (B,) the mean absolute deviation from it, over
  the valid pixels (MiDaS / DepthAnythingV2)."""
  b = d.shape[0]
  flat, mask = d.reshape(b, -1).astype(jnp.float32), valid.reshape(b, -1)
  t = masked_median(flat, mask)
  s = jnp.sum(jnp.abs(flat - t[:, None]) * mask, -1) / jnp.maximum(mask.sum(-1), 1)
  return t, s


def align_scale_shift(d: jax.Array, valid: jax.Array) -> jax.Array:
  """(B, H, W) maps -> (d - t(d)) / s(d) per sample over the valid pixels, 0 elsewhere."""
  t, s = shift_and_scale(d, valid)
  aligned = (d.astype(jnp.float32) - t[:, None, None]) / jnp.maximum(s, _EPS)[:, None, None]
  return jnp.where(valid, aligned, 0.0)


def gradient_matching(residual: jax.Array, valid: jax.Array, scales: int = 4) -> jax.Array:
  """MiDaS multi-scale gradient-matching term of the aligned residual (B, H, W): at each scale
  (every 2^k-th pixel), the mean over valid neighbour pairs of |dR/dx| + |dR/dy|; (B,)."""
  total = 0.0
  for k in range(scales):
    r, m = residual[:, ::2 ** k, ::2 ** k], valid[:, ::2 ** k, ::2 ** k]
    mx, my = m[:, :, 1:] & m[:, :, :-1], m[:, 1:] & m[:, :-1]
    gx = jnp.abs(r[:, :, 1:] - r[:, :, :-1]) * mx
    gy = jnp.abs(r[:, 1:] - r[:, :-1]) * my
    count = jnp.maximum(m.sum((1, 2)), 1)
    total = total + (gx.sum((1, 2)) + gy.sum((1, 2))) / count
  return total


def ssi_loss(pred: jax.Array, target: jax.Array, valid: jax.Array, gradient_weight: float = 0.0,
             scales: int = 4, reduce: bool = True) -> jax.Array:
  """Scale-and-shift-invariant loss of MiDaS / DepthAnythingV2.

  Args:
    pred, target: (B, H, W) relative inverse depth (any scale and shift).
    valid: (B, H, W) bool, the pixels that count (padding and warped-in border excluded).
    gradient_weight: weight of the multi-scale gradient-matching term (0: none).
  Returns:
    mean over the batch (or (B,) when `reduce` is False) of mean_valid |d^ - d*^|
    (+ gradient_weight * gradient matching), d^ = (d - median(d)) / mean|d - median(d)|.
  """
  valid = valid.astype(bool)
  residual = align_scale_shift(pred, valid) - align_scale_shift(target, valid)
  count = jnp.maximum(valid.sum((1, 2)), 1)
  per_sample = jnp.sum(jnp.abs(residual), (1, 2)) / count
  if gradient_weight:
    per_sample = per_sample + gradient_weight * gradient_matching(residual, valid, scales)
  return per_sample.mean() if reduce else per_sample


# --- data ---------------------------------------------------------------------------------------
class DepthSample:
  """grain random_map: procedural record, rng -> {'image' uint8 (S, S, 3), 'depth', 'valid'}."""

  def __init__(self, size: int, augment: bool):
    from ois_jax.data_pipelines import augment as augment_lib
    self.cfg = augment_lib.AugmentConfig(size=int(size), enabled=bool(augment))
    self.augment = augment_lib.augment

  def __call__(self, record: dict, rng: np.random.Generator) -> dict:
    labels = np.zeros(record["depth"].shape, np.int8)
    image, labels, depth, content = self.augment(record["image"], labels, record["depth"], rng, self.cfg)
    return {"image": image, "depth": depth.astype(np.float32), "valid": content & (labels >= 0)}


def make_depth_iterator(config, seed: int | None = None):
  """Infinite deterministic iterator of batches {'image' (B, S, S, 3) f32 normalised,
  'depth' (B, S, S) f32, 'valid' (B, S, S) bool} from the procedural 'train' scenes."""
  import grain
  from ois_jax.data_pipelines import procedural
  from ois_jax.data_pipelines.training import normalize
  d = config.data
  seed = int(config.seed if seed is None else seed) % 2**32
  scenes = procedural.scenes_from_config(d, "train", d.procedural_num_train)
  ds = grain.MapDataset.source(scenes).shuffle(seed=seed).repeat(None)
  ds = ds.random_map(DepthSample(config.model.input_size, d.augment), seed=(seed + 0x5EED) % 2**32)
  ds = ds.batch(int(d.batch_size), drop_remainder=True)
  read = grain.ReadOptions(num_threads=int(d.num_threads), prefetch_buffer_size=int(d.prefetch_buffer))
  for batch in ds.to_iter_dataset(read):
    yield {"image": normalize(batch["image"], batch["valid"]), "depth": batch["depth"],
           "valid": batch["valid"]}


# --- model and training -------------------------------------------------------------------------
def depth_config(config):
  """The DepthConfig (variant 'custom') of a stage-1 ConfigDict's `model` section."""
  from ois_jax.models.depth import DepthConfig, DepthSize
  m = config.model
  size = DepthSize(int(m.embed_dim), int(m.depth), int(m.num_heads),
                   tuple(int(i) for i in m.intermediate_layers), int(m.features),
                   tuple(int(c) for c in m.out_channels))
  return DepthConfig("custom", input_size=int(m.input_size), size=size)


def init_params(model, seed: int, layer_scale: float | None = None) -> dict:
  """Flax's initialisers of the DepthAnythingV2 (the training start), drawn from an RBG key: one
  threefry kernel per parameter would make XLA:CPU compile several times slower.

  layer_scale: the initial LayerScale gammas (None: DINOv2's 1e-5, made for long pre-training;
  a short run learns faster when the blocks start with a larger say).
  """
  def init(rng):
    key = jax.random.key(jax.random.randint(rng, (), 0, np.iinfo(np.int32).max), impl="unsafe_rbg")
    params = model.init(key, jnp.zeros((1, 28, 28, 3), jnp.float32))["params"]
    if layer_scale is not None:
      params = jax.tree_util.tree_map_with_path(
          lambda path, v: jnp.full_like(v, layer_scale) if path[-1].key == "gamma" else v, params)
    return params
  return jax.jit(init)(jax.random.key(seed))


def make_optimizer(config) -> optax.GradientTransformation:
  """AdamW with a linear warm-up and a cosine decay to 0 over `total_steps`."""
  t = config.train
  total = int(config.total_steps)
  warmup = min(int(t.warmup_steps), max(total - 1, 0))
  schedule = optax.warmup_cosine_decay_schedule(0.0, float(t.learning_rate), max(warmup, 1),
                                                max(total, warmup + 1))
  return optax.chain(optax.clip_by_global_norm(float(t.grad_clip)),
                     optax.adamw(schedule, weight_decay=float(t.weight_decay)))


def make_train_step(model, config, tx):
  """`step(params, opt_state, batch) -> (params, opt_state, loss)` (pure; jit it)."""
  gradient_weight = float(config.train.gradient_weight)
  scale_weight = float(config.train.scale_weight)

  def loss_fn(params, batch):
    pred = model.apply({"params": params}, batch["image"])
    loss = ssi_loss(pred, batch["depth"], batch["valid"], gradient_weight)
    # OUR CHOICE: the SSI loss leaves the output scale free, and it drifts (to thousands in 800
    # steps); the segmentation head of stage 2 starts as a copy of this head, so its first
    # logits would be that large. A weak pull of log s(pred) towards 0 keeps the output O(1).
    _, s = shift_and_scale(pred, batch["valid"])
    anchor = jnp.mean(jnp.log(jnp.maximum(s, _EPS)) ** 2)
    return loss + scale_weight * anchor, loss

  def step(params, opt_state, batch):
    (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


def settings_record(config) -> dict:
  """What decides the stage-1 weights (a workdir made with other settings is not reused)."""
  return json.loads(config.to_json(sort_keys=True))


def train_depth(config, workdir: str, *, quiet: bool = False, log=print) -> dict:
  """Trains a custom-size DepthAnythingV2 for `config.total_steps` steps; saves the checkpoint.

  A workdir that already holds the checkpoint of the same settings is reused as it is (the run
  is deterministic); one of other settings is refused (CheckpointError), never overwritten.
  Also writes WORKDIR/heldout_depth.png (plot_heldout_depth) and logs the held-out SSI error.
  Returns {'checkpoint': dir, 'losses': [...], 'seconds': float, 'heldout_ssi': float,
  'reused': bool}.
  """
  from tqdm import tqdm
  from ois_jax import checkpoint
  from ois_jax.models.depth import DepthAnythingV2
  workdir = os.path.abspath(workdir)
  ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)
  summary_path = os.path.join(workdir, SUMMARY_FILE)
  settings = settings_record(config)
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      previous = json.load(f)
    if previous.get("settings") != settings:
      raise CheckpointError(f"{workdir}: holds a depth model trained with other settings; "
                            "use another workdir (or remove it)")
    if checkpoint.is_checkpoint(ckpt_dir):
      log(f"Stage 1: reusing the depth model in {ckpt_dir} (same settings)")
      return dict(previous, checkpoint=ckpt_dir, reused=True)
  elif os.path.isdir(workdir) and os.listdir(workdir):
    raise CheckpointError(f"{workdir}: not empty and not a stage-1 depth run; use another workdir")
  os.makedirs(workdir, exist_ok=True)

  dcfg = depth_config(config)
  model = DepthAnythingV2.from_config(dcfg)
  params = init_params(model, int(config.seed), config.train.get("layer_scale_init"))
  tx = make_optimizer(config)
  opt_state = tx.init(params)
  step_fn = jax.jit(make_train_step(model, config, tx), donate_argnums=(0, 1))
  data = make_depth_iterator(config)
  total = int(config.total_steps)
  log_every = max(1, int(config.train.log_every))
  losses, pending = [], []
  start = time.time()
  bar = tqdm(total=total, unit="step", desc="stage 1 depth", disable=quiet, file=sys.stdout,
             dynamic_ncols=True)
  for step in range(1, total + 1):
    params, opt_state, loss = step_fn(params, opt_state, next(data))
    pending.append(loss)
    bar.update(1)
    if step % log_every == 0 or step == total:
      losses.extend(float(v) for v in jax.device_get(pending))
      pending.clear()
      bar.set_postfix(ssi=f"{np.mean(losses[-log_every:]):.4f}")
  bar.close()
  seconds = time.time() - start
  checkpoint.save_checkpoint(ckpt_dir, jax.device_get(params), dcfg)
  heldout = heldout_depth(model, params, config)
  figure = plot_heldout_depth(heldout, os.path.join(workdir, FIGURE_FILE))
  summary = {"settings": settings, "losses": losses, "seconds": seconds, "steps": total,
             "heldout_ssi": heldout["ssi"]}
  with open(summary_path, "w") as f:
    json.dump(summary, f)
  log(f"Stage 1: {total} steps in {seconds:.0f} s, SSI loss {np.mean(losses[:10]):.3f} -> "
      f"{np.mean(losses[-10:]):.3f}; held-out SSI {heldout['ssi']:.3f} (a constant map scores 1.000, "
      f"the true depth 0); saved {ckpt_dir}\nStage 1: held-out depth maps: {figure}")
  return dict(summary, checkpoint=ckpt_dir, reused=False)


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
