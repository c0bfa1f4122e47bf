"""The paper's model: DepthAnythingV2 ViT-B encoder, 1024 input, 3 attention blocks."""

from ois_jax.configs import common


def get_config():
  c = common.base_config()
  c.name = "ois_vitb_1024"
  c.model.encoder = "vitb"
  c.model.input_size = 1022  # DAv2 patches are 14 px: 73 x 14 = 1022 is the multiple nearest 1024
  c.total_steps = 100_000
  c.checkpoint_every = 2000
  return c
