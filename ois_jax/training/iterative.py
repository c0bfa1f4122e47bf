"""Iterative training clicks (RITM / SegNext training), on the device.

Between the sampled initial clicks and the gradient step, 0..`data.max_iterative_rounds`
rounds run the model without gradient; each round's prediction places one more click per sample:
a uniformly random pixel of the larger error region (by its largest distance to the region's
border) whose distance exceeds half that maximum (RITM / SegNext `get_next_points`).
"""

import jax
import jax.numpy as jnp

from ois_jax.evaluation.edt import edt


def next_training_clicks(pred, gt, coords, valid, rng, num_positive: int):
  """Adds one click per sample where the error is largest.

  Args:
    pred: (B, H, W) bool prediction.
    gt: (B, H, W) int, 1 object / 0 background / -1 ignore.
    coords: (B, N, 2) float32 (y, x) in model pixels; valid: (B, N) bool. Slots [0, num_positive)
      are positive, the rest negative.
    rng: PRNG key.
  Returns:
    (coords, valid) with the new click written to the first free slot of its kind; unchanged for a
    sample with no error left or no free slot.
  """
  b, h, w = gt.shape
  not_ignore = gt >= 0
  fn = (gt == 1) & ~pred & not_ignore
  fp = (gt == 0) & pred & not_ignore
  fn_dt, fp_dt = edt(fn), edt(fp)                              # (B, H, W); border = background
  fn_max, fp_max = fn_dt.max(axis=(1, 2)), fp_dt.max(axis=(1, 2))  # (B,)
  is_positive = fn_max > fp_max
  dt = jnp.where(is_positive[:, None, None], fn_dt, fp_dt)
  inner = dt > (jnp.maximum(fn_max, fp_max) / 2.0)[:, None, None]  # empty when no error
  # A uniform random pixel among `inner`: argmax of uniform noise restricted to it.
  noise = jax.random.uniform(rng, (b, h, w))
  flat = jnp.argmax(jnp.where(inner, noise, -1.0).reshape(b, -1), axis=1)
  point = jnp.stack([flat // w, flat % w], axis=-1).astype(coords.dtype)  # (B, 2)

  n = valid.shape[1]
  slot_ids = jnp.arange(n)
  of_kind = jnp.where(is_positive[:, None], slot_ids[None] < num_positive,
                      slot_ids[None] >= num_positive)                      # (B, N)
  free = of_kind & ~valid
  slot = jnp.argmax(free, axis=1)                                         # first free slot
  write = inner.any(axis=(1, 2)) & free.any(axis=1)                       # (B,)
  onehot = (slot_ids[None] == slot[:, None]) & write[:, None]             # (B, N)
  coords = jnp.where(onehot[..., None], point[:, None, :], coords)
  valid = valid | onehot
  return coords, valid


def run_iterative_rounds(predict_fn, gt, coords, valid, rng, num_rounds, *, num_positive: int,
                         threshold: float):
  """Runs `num_rounds` (a traced int) no-gradient rounds with a `lax.while_loop`.

  Args:
    predict_fn: (coords, valid, prev_mask (B, H, W) f32, has_prev (B,) bool) -> logits (B, H, W);
      it must not carry gradients (callers pass stop_gradient-ed params and image state).
    gt: (B, H, W); coords (B, N, 2); valid (B, N); rng: PRNG key; num_rounds: int32 scalar.
  Returns:
    (coords, valid, prev_mask, has_prev) for the gradient step: the last round's probabilities
    fed back, has_prev False when no round ran.
  """
  b, h, w = gt.shape
  prev = jnp.zeros((b, h, w), jnp.float32)
  has_prev = jnp.zeros((b,), bool)

  def body(i, carry):
    coords, valid, prev, has_prev = carry
    logits = predict_fn(coords, valid, prev, has_prev)
    prob = jax.nn.sigmoid(logits.astype(jnp.float32))
    coords, valid = next_training_clicks(prob > threshold, gt, coords, valid,
                                         jax.random.fold_in(rng, i), num_positive)
    return coords, valid, prob, jnp.ones_like(has_prev)

  carry = jax.lax.fori_loop(0, num_rounds, body, (coords, valid, prev, has_prev))
  return tuple(jax.lax.stop_gradient(x) for x in carry)
