"""Flax modules: DINOv2 ViT, DPT heads, depth model and the OIS model."""


def __getattr__(name):
  # Lazy so that importing a single submodule (vit, dpt) stays cheap.
  if name in ("build_model", "OIS", "OISConfig", "init_params", "encode_image", "decode",
              "trainable_mask", "init_from_depth", "init_from_depth_checkpoint"):
    from ois_jax.models import ois
    return getattr(ois, name)
  raise AttributeError(f"module 'ois_jax.models' has no attribute {name!r}")
