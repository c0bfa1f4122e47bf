"""Stage 2 of the quickstart: OIS on top of the stage-1 depth model, as the paper trains it.

The encoder and the depth head are the stage-1 DepthAnythingV2 (depth_tiny_procedural.py beside this file,
loaded through `model.depth_checkpoint`, which the quickstart sets), frozen; the segmentation head
starts from the depth head; the order maps come from the model's own predicted depth
(`depth_source='head'`). Trained on the procedural scenes.
"""

from ois_jax.configs import common
from ois_jax.proj.miniature.configs import depth_tiny_procedural


def link_encoder(c, depth):
  """Copies the stage-1 depth model's sizes (common.SIZE_KEYS, the same names in both configs)
  into the OIS `model` section."""
  c.model.encoder = "custom"
  for key in common.SIZE_KEYS:
    value = depth.model[key]
    c.model[key] = tuple(value) if isinstance(value, (list, tuple)) else value
  return c


def get_config():
  c = common.base_config()
  c.name = "ois_tiny_procedural"
  link_encoder(c, depth_tiny_procedural.get_config())
  m = c.model
  m.depth_source = "head"
  m.prompt_dim = 64
  m.num_heads = 4
  m.mlp_dim = 128
  m.num_blocks = 2
  # At 112 px the SegNext disk (5 px at 1024) is under a pixel, one lit pixel in a 14 x 14 patch;
  # 80 gives 8.75 px, so the patchify conv sees where in a token a click lies (measured on this
  # recipe: 1-mIoU 9 % -> 45 %, ../README.md).
  m.disk_radius = 80
  # The 8 x 8 token grid is too coarse for a mask; the prompts also reach the segmentation
  # head's 32 x 32 and 16 x 16 skip levels (models/attention.py SkipPromptFusion).
  m.fine_prompt_levels = 2
  c.total_steps = 600
  c.checkpoint_every = 600
  d = c.data
  d.dataset = "procedural"
  d.augment = False       # as in stage 1: the scenes vary enough, evaluation sees them unaugmented
  d.batch_size = 8
  d.num_threads = 2
  d.procedural_num_train = 2000
  d.procedural_num_val = 100
  t = c.train
  t.learning_rate = 1e-3
  t.lr_decay_steps = (0.8,)
  t.log_every = 25
  # Unaugmented scenes: the frozen encoder + depth head run once per scene, not once per step
  # (training/frozen_cache.py; same gradients; a step 278 -> 235 ms on 2 cores, ~350 MiB host;
  # benchmarks/stage2_profile.py, ../README.md).
  t.cache_frozen_outputs = True
  e = c.eval
  e.batch_size = 10
  e.num_samples = 0   # the quickstart evaluates after training (stage 3)
  return c
