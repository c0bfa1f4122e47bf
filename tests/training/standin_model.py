"""A small stand-in with the OIS model's pure functions (ModelFns), for training tests.

Frozen 'encoder' and 'depth_head' subtrees, a trainable 'seg_head' that sees click disks, the
previous mask and the image features. Loaded by path (tests run with --import-mode=importlib).
"""

import types

import flax.linen as nn
import jax
import jax.numpy as jnp

PATCH = 8


class StandIn(nn.Module):
  size: int
  width: int = 16

  def setup(self):
    self.encoder = nn.Dense(self.width, name="encoder")
    self.depth_head = nn.Dense(1, name="depth_head")
    self.seg_head = nn.Sequential([nn.Conv(self.width, (3, 3)), nn.relu, nn.Conv(self.width, (3, 3)),
                                   nn.relu, nn.Conv(1, (3, 3))], name="seg_head")

  def encode(self, images):
    b, s = images.shape[0], self.size
    g = s // PATCH
    patches = images.reshape(b, g, PATCH, g, PATCH, 3).transpose(0, 1, 3, 2, 4, 5).reshape(b, g, g, -1)
    feats = nn.gelu(self.encoder(patches))                       # (B, g, g, D)
    depth = self.depth_head(feats)[..., 0]
    return {"features": feats, "depth": depth}

  def decode(self, image_state, coords, valid, prev_mask):
    b, s = prev_mask.shape[0], self.size
    yy, xx = jnp.mgrid[0:s, 0:s]
    d2 = (yy[None, None] - coords[..., 0, None, None]) ** 2 + (xx[None, None] - coords[..., 1, None, None]) ** 2
    disks = (d2 <= 9.0) & valid[..., None, None]                # (B, N, S, S)
    half = coords.shape[1] // 2
    pos, neg = disks[:, :half].any(1), disks[:, half:].any(1)
    feats = jax.image.resize(image_state["features"], (b, s, s, self.width), "nearest")
    x = jnp.concatenate([feats, pos[..., None], neg[..., None], prev_mask[..., None]], axis=-1)
    return self.seg_head(x)[..., 0]

  def __call__(self, images, coords, valid, prev_mask):
    return self.decode(self.encode(images), coords, valid, prev_mask)


def build(cfg_model):
  return StandIn(size=int(cfg_model.input_size))


def init_params(model, rng):
  s = model.size
  return model.init(rng, jnp.zeros((1, s, s, 3)), jnp.zeros((1, 48, 2)), jnp.zeros((1, 48), bool),
                    jnp.zeros((1, s, s)))["params"]


def encode_image(model, params, images, depth=None):
  return model.apply({"params": params}, images, method=StandIn.encode)


def decode(model, params, image_state, clicks, prev_mask, has_prev):
  coords, valid = (clicks.coords, clicks.valid) if hasattr(clicks, "coords") else clicks
  prev_mask = jnp.where(has_prev[:, None, None], prev_mask, 0.0)
  return model.apply({"params": params}, image_state, coords, valid, prev_mask, method=StandIn.decode)


def trainable_mask(params):
  return {k: jax.tree.map(lambda _: k not in ("encoder", "depth_head"), v) for k, v in params.items()}


FNS = types.SimpleNamespace(init_params=init_params, encode_image=encode_image, decode=decode,
                            trainable_mask=trainable_mask, make_clicks=lambda c, v: (c, v),
                            build_model=build, frozen_outputs=encode_image,  # all of it is frozen
                            image_state=lambda model, params, frozen: frozen)


class ToyData:
  """Deterministic batches of rectangles on noise, with a checkpointable position (stand-in for
  the grain iterator of `data_pipelines.training`)."""

  def __init__(self, config, seed=0):
    self.size = int(config.model.input_size)
    self.batch = int(config.data.batch_size)
    self.seed = seed
    self.index = 0

  def get_state(self):
    return {"index": self.index}

  def set_state(self, state):
    self.index = int(state["index"])

  def __iter__(self):
    return self

  def __next__(self):
    import numpy as np
    rng = np.random.default_rng([self.seed, self.index])
    self.index += 1
    s, b = self.size, self.batch
    image = rng.normal(0, 0.3, (b, s, s, 3)).astype(np.float32)
    gt = np.zeros((b, s, s), np.int8)
    coords = np.zeros((b, 48, 2), np.float32)
    valid = np.zeros((b, 48), bool)
    for i in range(b):
      y0, x0 = rng.integers(0, s // 2, 2)
      h, w = rng.integers(s // 4, s // 2, 2)
      gt[i, y0:y0 + h, x0:x0 + w] = 1
      image[i, y0:y0 + h, x0:x0 + w] += 1.0
      coords[i, 0] = (y0 + h // 2, x0 + w // 2)
      valid[i, 0] = True
    gt[:, :, :2] = -1
    return {"image": image, "gt": gt, "click_coords": coords, "click_valid": valid}


def config(size=32, batch=4):
  """The tiny config shrunk for the stand-in (input 32, FSDP threshold low enough to shard)."""
  from ois_jax.configs import ois_tiny
  cfg = ois_tiny.get_config()
  cfg.model.input_size = size
  cfg.data.batch_size = batch
  cfg.train.fsdp_min_size = 64
  return cfg
