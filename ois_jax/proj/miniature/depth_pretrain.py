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

Fixed step count and seed: the same config gives the same weights on a rerun on the same machine.
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
from ois_jax.models import fast_init
from ois_jax.proj.miniature.depth_eval import heldout_depth, plot_heldout_depth
from ois_jax.training.ssi_loss import EPS, shift_and_scale, ssi_loss

CHECKPOINT_DIR = "checkpoint"   # the converted-DAv2 checkpoint inside a stage-1 workdir
SUMMARY_FILE = "depth_summary.json"
STARTED_FILE = "depth_started.json"  # written first: the settings of a run that may not finish
FIGURE_FILE = "heldout_depth.png"  # held-out scenes: image, true depth, the model's depth


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
  return DepthConfig("custom", input_size=int(m.input_size), size=DepthSize.from_model_config(m))


def init_params(model, seed: int, layer_scale: float | None = None) -> dict:
  """Flax's initialisers of the DepthAnythingV2 (the training start; `fast_init.rbg_init`).

  layer_scale: the initial LayerScale gammas (None: DINOv2's 1e-5, made for long pre-training;
  a short run learns faster when the blocks start with a larger say).
  """
  def init(rng):
    params = fast_init.rbg_init(model, rng, jnp.zeros((1, 28, 28, 3), jnp.float32))
    if layer_scale is not None:
      params = jax.tree_util.tree_map_with_path(
          lambda path, v: jnp.full_like(v, layer_scale) if path[-1].key == "gamma" else v, params)
    return params
  return jax.jit(init)(jax.random.key(seed))


def make_optimizer(config) -> optax.GradientTransformation:
  """AdamW with a linear warm-up and a cosine decay to 0 over `total_steps`."""
  t = config.train
  total = int(config.total_steps)
  warmup = max(1, min(int(t.warmup_steps), max(total - 1, 0)))
  schedule = optax.warmup_cosine_decay_schedule(0.0, float(t.learning_rate), warmup,
                                                max(total, warmup + 1))  # 1 step too (--depth-steps 1)
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
    anchor = jnp.mean(jnp.log(jnp.maximum(s, EPS)) ** 2)
    return loss + scale_weight * anchor, loss

  def step(params, opt_state, batch):
    (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


def settings_record(config) -> dict:
  """What decides the stage-1 weights (a workdir made with other settings is not reused)."""
  return json.loads(config.to_json(sort_keys=True))


def _started_settings(workdir: str):
  try:
    with open(os.path.join(workdir, STARTED_FILE)) as f:
      return json.load(f).get("settings")
  except (OSError, ValueError, AttributeError):
    return None


def train_depth(config, workdir: str, *, quiet: bool = False, log=print) -> dict:
  """Trains a custom-size DepthAnythingV2 for `config.total_steps` steps; saves the checkpoint.

  A workdir that already holds the checkpoint of the same settings is reused as it is (the run
  is deterministic); one that a run of the same settings left unfinished (stopped before its
  summary was written) is trained again; one of other settings is refused (CheckpointError),
  never overwritten.
  Also writes WORKDIR/heldout_depth.png (plot_heldout_depth) and logs the held-out SSI error.
  Returns {'checkpoint': dir, 'losses': [...], 'seconds': float, 'heldout_ssi': float,
  'reused': bool}.
  """
  from tqdm import tqdm
  from ois_jax import checkpoint, outputs
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
    if _started_settings(workdir) != settings:
      raise CheckpointError(f"{workdir}: not empty and not a stage-1 depth run; use another workdir")
    log(f"Stage 1: the run in {workdir} stopped before it finished; training it again")
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, STARTED_FILE), "w") as f:  # an unfinished run is known as ours
    json.dump({"settings": settings}, f)

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
  checkpoint.save_checkpoint(ckpt_dir, jax.device_get(params), dcfg, overwrite=True)
  heldout = heldout_depth(model, params, config)
  figure = plot_heldout_depth(heldout, os.path.join(workdir, FIGURE_FILE))
  summary = {"settings": settings, "losses": losses, "seconds": seconds, "steps": total,
             "heldout_ssi": heldout["ssi"]}
  outputs.write_text(summary_path, json.dumps(summary), what="stage-1 summary")  # whole or not at all
  log(f"Stage 1: {total} steps in {seconds:.0f} s, SSI loss {np.mean(losses[:10]):.3f} -> "
      f"{np.mean(losses[-10:]):.3f}; held-out SSI {heldout['ssi']:.3f} (a constant map scores 1.000, "
      f"the true depth 0); saved {ckpt_dir}\nStage 1: held-out depth maps: {figure}")
  return dict(summary, checkpoint=ckpt_dir, reused=False)
