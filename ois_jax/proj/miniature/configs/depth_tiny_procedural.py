"""Stage 1 of the quickstart: a small DepthAnythingV2 (custom size) trained on the procedural scenes.

Same ViT + DPT code as the released DAv2 models; see ../depth_pretrain.py. The OIS
recipe config (ois_tiny_procedural.py) builds its encoder from these sizes.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "depth_tiny_procedural"
  c.seed = 0
  c.total_steps = 600

  # Sizes: a wide-enough ViT (its cost is small next to the full-resolution DPT head) and a
  # narrow head; 112 px input (8 x 8 tokens) keeps the whole quickstart under 6 minutes on 2 idle cores.
  # The keys are configs/common.py's SIZE_KEYS, the names an OIS config gives the same sizes.
  m = c.model = ml_collections.ConfigDict()
  m.encoder_embed_dim = 128
  m.encoder_depth = 6
  m.encoder_num_heads = 4
  m.encoder_layers = (2, 3, 4, 5)  # the blocks whose outputs feed the DPT head
  m.head_features = 16
  m.head_out_channels = (16, 32, 64, 128)
  m.input_size = 112

  d = c.data = ml_collections.ConfigDict()
  d.procedural_num_train = 2000
  d.procedural_size = (120, 160)
  d.procedural_seed = 0
  d.procedural_depth = "true"  # the training target: true | occlusion (the held-out score: true)
  d.procedural_world = "camera"  # camera | levels (data_pipelines/procedural.py)
  d.batch_size = 8
  d.augment = False            # the scenes are varied already; evaluation sees them unaugmented
  d.num_threads = 2
  d.prefetch_buffer = 32

  t = c.train = ml_collections.ConfigDict()
  t.learning_rate = 1e-3
  t.layer_scale_init = 0.1     # initial LayerScale gammas (DINOv2's 1e-5 is for long pre-training)
  t.warmup_steps = 50
  t.weight_decay = 1e-4
  t.grad_clip = 1.0
  t.gradient_weight = 0.0      # MiDaS gradient matching (0.5 stalled the SSI term in our runs)
  t.scale_weight = 0.01        # keeps the output scale O(1) (see depth_pretrain.make_train_step)
  t.log_every = 25
  return c


def schema():
  """The keys and types `load_config` checks this config against: its own (stage 1 trains a
  DepthAnythingV2, not OIS, so configs/common.py is not its schema)."""
  return get_config()
