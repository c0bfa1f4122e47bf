"""OIS with the DepthAnythingV2 ViT-S encoder at 518 input (DAv2's native size)."""

from ois_jax.configs import common


def get_config():
  c = common.base_config()
  c.name = "ois_vits_518"
  c.model.encoder = "vits"
  c.model.input_size = 518
  return c
