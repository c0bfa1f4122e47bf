"""A tiny OIS model for tests and the CPU quickstart (seconds per step on 2 cores)."""

from ois_jax.configs import common


def get_config():
  c = common.base_config()
  c.name = "ois_tiny"
  m = c.model
  m.encoder = "custom"
  m.encoder_embed_dim = 32
  m.encoder_depth = 4
  m.encoder_num_heads = 2
  m.encoder_layers = (0, 1, 2, 3)
  m.head_features = 16
  m.head_out_channels = (8, 16, 32, 32)
  m.input_size = 112
  m.prompt_dim = 32
  m.num_heads = 2
  m.mlp_dim = 64
  m.num_blocks = 2
  c.total_steps = 200
  c.checkpoint_every = 100
  c.data.batch_size = 4
  c.train.learning_rate = 1e-3
  c.eval.batch_size = 4
  c.eval.num_samples = 8
  return c
