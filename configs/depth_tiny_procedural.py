"""Stage 1 of the quickstart: a small DepthAnythingV2 (custom size) trained on the procedural scenes.

Same ViT + DPT code as the released DAv2 models; see ois_jax/training/depth_pretrain.py. The OIS
recipe config (configs/ois_tiny_procedural.py) builds its encoder from these sizes.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "depth_tiny_procedural"
  c.seed = 0
  c.total_steps = 1500

  m = c.model = ml_collections.ConfigDict()
  m.embed_dim = 64
  m.depth = 4
  m.num_heads = 4
  m.intermediate_layers = (0, 1, 2, 3)
  m.features = 32
  m.out_channels = (16, 32, 64, 64)
  m.input_size = 168            # 12 x 12 tokens for the 120 x 160 scenes

  d = c.data = ml_collections.ConfigDict()
  d.procedural_num_train = 2000
  d.procedural_size = (120, 160)
  d.procedural_seed = 0
  d.batch_size = 8
  d.augment = True
  d.num_threads = 2
  d.prefetch_buffer = 32

  t = c.train = ml_collections.ConfigDict()
  t.learning_rate = 1e-3
  t.warmup_steps = 100
  t.weight_decay = 1e-4
  t.grad_clip = 1.0
  t.gradient_weight = 0.5      # MiDaS multi-scale gradient matching on the aligned residual
  t.log_every = 25
  return c
