"""A tiny stand-in for the model's encode_image / decode used by the evaluation unit tests.

Its logits depend on the image, on the clicks (disks) and on the previous mask, so click sequences
are non-trivial, and they cost nothing to compile.
"""

import jax.numpy as jnp
import ml_collections
import numpy as np

from ois_jax.evaluation import evaluator
from ois_jax.geometry import bilinear_matrix
from ois_jax.models.model_fns import ModelFns

SIZE = 32


def encode_fn(model, params, images, depth=None):
  return {"feat": images.mean(-1)}  # (B, S, S)


def decode_fn(model, params, state, clicks, prev_mask, has_prev):
  s = state["feat"].shape[-1]
  pix = jnp.arange(s, dtype=jnp.float32)
  dy2 = (pix[None, None, :, None] - clicks.coords[..., 0, None, None]) ** 2  # (B, N, S, 1)
  dx2 = (pix[None, None, None, :] - clicks.coords[..., 1, None, None]) ** 2  # (B, N, 1, S)
  near = ((dy2 + dx2) <= params["radius"] ** 2) & clicks.valid[..., None, None]
  pos = near[:, :24].any(1)
  neg = near[:, 24:].any(1)
  logits = (params["a"] * state["feat"] + 4.0 * pos - 6.0 * neg - 1.0
            + 3.0 * (prev_mask - 0.5) * has_prev[:, None, None])
  return logits


# Only what the evaluator calls: the image encoder and the click decoder.
FNS = ModelFns(build_model=None, init_params=None, trainable_mask=None, encode_image=encode_fn,
               decode=decode_fn, make_clicks=None)
PARAMS = {"a": jnp.float32(1.5), "radius": jnp.float32(4.0)}


def config(size=SIZE):
  c = ml_collections.ConfigDict()
  c.name = "fake"
  c.model = ml_collections.ConfigDict(dict(input_size=size, num_positive_slots=24,
                                           num_negative_slots=24, depth_source="head"))
  c.eval = ml_collections.ConfigDict(dict(threshold=0.49, batch_size=3, max_clicks=6))
  return c


def prepared(name, image, gt, size=SIZE):
  """The model-input preprocessing written out independently: resize the longest side, pad."""
  h, w = gt.shape
  scale = size / max(h, w)
  rh, rw = int(round(h * scale)), int(round(w * scale))
  x = np.zeros((size, size, 3), np.float32)
  my, mx = bilinear_matrix(h, rh, False), bilinear_matrix(w, rw, False)
  x[:rh, :rw] = np.einsum("yh,hwc,xw->yxc", my, (image / 255.0 - 0.5) / 0.25, mx)
  back_h = np.zeros((h, size), np.float32)
  back_w = np.zeros((w, size), np.float32)
  back_h[:, :rh] = bilinear_matrix(rh, h, False)
  back_w[:, :rw] = bilinear_matrix(rw, w, False)
  to_h = np.zeros((size, h), np.float32)
  to_w = np.zeros((size, w), np.float32)
  to_h[:rh], to_w[:rw] = my, mx
  return evaluator.Prepared(name, x, gt.astype(np.int8), back_h, back_w, scale, to_h, to_w)
