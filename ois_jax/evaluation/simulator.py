"""The protocol's click simulator in JAX, and the jitted click loop built on it.

`next_click` has exactly the semantics of the NumPy oracle (`clicker.next_click`) but works on
padded canvases: a sample's real region is its (H, W) top-left corner of a larger fixed canvas and
pixels outside it are neither false negative nor false positive. Those zeros, plus the canvas border
that `edt` treats as background, reproduce the oracle's 1-pixel zero padding exactly,
and row-major order inside the real region is the same as on the canvas.

`click_loop` runs all clicks of a batch of samples under one jit (`jax.lax.scan` over clicks):
decode -> logits back to the original resolution (two matmuls with per-sample resize matrices) ->
prob > threshold -> IoU with ignore removed -> next click -> add to the fixed-slot `Clicks` -> feed
the probability map back. No host round trip per click.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from ois_jax import geometry
from ois_jax.evaluation import edt
from ois_jax.evaluation.metrics import iou


def next_click(gt: jax.Array, pred: jax.Array, clicked: jax.Array, valid: jax.Array | None = None,
               edt_method: str = "auto"):
  """The next click on a (batch of) padded canvas(es).

  Args:
    gt: (..., Hc, Wc) int, 1 object / 0 background / -1 ignore.
    pred: (..., Hc, Wc) bool prediction.
    clicked: (..., Hc, Wc) bool, already clicked pixels.
    valid: (..., Hc, Wc) bool real-image region (None: the whole canvas is real).
    edt_method: "bounded" (`edt.max_distance`: only the maxima, CPU default), or a whole
      transform and its argmax: "offsets" (GPU/TPU default) or "envelope"; "auto" picks by
      backend. All are exact.
  Returns:
    y, x: (...) int32 canvas = original coordinates; is_positive: (...) bool.
  """
  not_ignore = gt != -1
  if valid is not None:
    not_ignore = not_ignore & valid
  obj = gt == 1
  fn = obj & ~pred & not_ignore
  fp = ~obj & pred & not_ignore
  errors = jnp.stack([fn, fp], axis=-3)  # (..., 2, Hc, Wc)
  wc = gt.shape[-1]
  if edt_method == "auto":
    edt_method = "bounded" if jax.default_backend() == "cpu" else "offsets"
  if edt_method == "bounded":
    maxima, first = edt.max_distance(errors, (~clicked)[..., None, :, :])  # (..., 2) each
    is_positive = maxima[..., 0] > maxima[..., 1]  # a tie gives a negative click
    index = jnp.where(is_positive, first[..., 0], first[..., 1])
    return index // wc, index % wc, is_positive
  # float32 distances, as the oracle (its SciPy float64 sqrt of an integer rounds to the same float32).
  dist = edt.edt(errors, edt_method) * (~clicked)[..., None, :, :]
  flat = dist.reshape(dist.shape[:-2] + (-1,))  # (..., 2, Hc*Wc)
  maxima = flat.max(axis=-1)  # (..., 2)
  is_positive = maxima[..., 0] > maxima[..., 1]  # a tie gives a negative click
  chosen = jnp.where(is_positive[..., None], flat[..., 0, :], flat[..., 1, :])
  index = jnp.argmax(chosen, axis=-1).astype(jnp.int32)  # first maximum in row-major order
  return index // wc, index % wc, is_positive


class LoopBatch(NamedTuple):
  """Per-batch inputs of the click loop (device arrays; B samples on an (Hc, Wc) canvas).

  gt: (B, Hc, Wc) int8, 1 / 0 / -1, zero outside the real region.
  valid: (B, Hc, Wc) bool real region (top-left H x W).
  resize_h: (B, Hc, S) float32, rows of `Transform.resize_back_matrices()[0]`, zero rows below H.
  resize_w: (B, Wc, S) float32, the same for the width.
  scale: (B,) float32 original -> model coordinate scale (`Transform.scale`).
  to_model_h: (B, S, Hc) float32, `Transform.to_model_matrices()[0]`, zero columns beyond H.
  to_model_w: (B, S, Wc) float32, the same for the width.
  """
  gt: jax.Array
  valid: jax.Array
  resize_h: jax.Array
  resize_w: jax.Array
  scale: jax.Array
  to_model_h: jax.Array
  to_model_w: jax.Array


class LoopOutput(NamedTuple):
  """(B, K) per click: IoU after the click, the click (y, x) at original resolution and its sign."""
  ious: jax.Array
  ys: jax.Array
  xs: jax.Array
  positive: jax.Array


def to_original(logits: jax.Array, batch: LoopBatch, threshold: float):
  """Model-space logits (B, S, S) -> (pred (B, Hc, Wc) bool, prev_model (B, S, S) float32).

  Logits are resized back with two matmuls (crop + bilinear, align_corners=False), thresholded
  strictly (prob > threshold) and cut to the real region. As in RITM/SegNext and `Predictor`, the
  probability map at the original resolution is what is fed back: it is mapped into model space
  (bilinear resize + zero padding, two more matmuls) for the next round.
  """
  hp = jax.lax.Precision.HIGHEST
  orig = jnp.einsum("bhs,bst->bht", batch.resize_h, logits.astype(jnp.float32), precision=hp)
  orig = jnp.einsum("bht,bwt->bhw", orig, batch.resize_w, precision=hp)  # (B, Hc, Wc)
  prob = jnp.where(batch.valid, jax.nn.sigmoid(orig), 0.0)
  pred = (prob > threshold) & batch.valid
  prev = jnp.einsum("bsh,bhw->bsw", batch.to_model_h, prob, precision=hp)
  prev = jnp.einsum("bsw,btw->bst", prev, batch.to_model_w, precision=hp)  # (B, S, S)
  return pred, prev


def model_coords(y: jax.Array, x: jax.Array, scale: jax.Array) -> jax.Array:
  """(B,) original pixel (y, x) -> (B, 2) float32 model coordinates, as `Transform.to_model_coords`."""
  yx = jnp.stack([y, x], axis=-1).astype(jnp.float32)
  return geometry.to_model_coords(yx, scale[:, None])


def click_loop(decode_fn: Callable[..., jax.Array], image_state: Any, batch: LoopBatch,
               empty_clicks: Any, max_clicks: int, threshold: float,
               num_positive: int) -> LoopOutput:
  """All `max_clicks` rounds of the protocol for a batch (jittable; the image is already encoded).

  decode_fn(image_state, clicks, prev_mask (B, S, S), has_prev (B,)) -> logits (B, S, S).
  threshold: the protocol's `prob > threshold` (config.eval.threshold); num_positive: the model's
  positive slots (config.model.num_positive_slots). A click whose sign already fills all its
  slots is dropped from the model's prompts but still marked as clicked; with 24 slots and the
  standard 20 clicks this never happens.
  """
  bsz, hc, wc = batch.gt.shape
  s = batch.to_model_h.shape[-2]
  rows = jnp.arange(bsz)

  def step(carry, _):
    clicks, clicked, pred, prev, has_prev = carry
    y, x, positive = next_click(batch.gt, pred, clicked, batch.valid)
    clicked = clicked.at[rows, y, x].set(True)
    clicks = clicks.add(model_coords(y, x, batch.scale), positive, num_positive=num_positive)
    logits = decode_fn(image_state, clicks, prev, has_prev)
    pred, prev = to_original(logits, batch, threshold)
    score = iou(batch.gt, pred, batch.valid)
    carry = (clicks, clicked, pred, prev, jnp.ones_like(has_prev))
    return carry, (score, y, x, positive)

  init = (empty_clicks, jnp.zeros((bsz, hc, wc), bool), jnp.zeros((bsz, hc, wc), bool),
          jnp.zeros((bsz, s, s), jnp.float32), jnp.zeros((bsz,), bool))
  _, (ious, ys, xs, positive) = jax.lax.scan(step, init, None, length=max_clicks)
  # scan stacks over clicks first: (K, B) -> (B, K)
  return LoopOutput(ious.T, ys.T, xs.T, positive.T)
