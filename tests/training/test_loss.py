"""Normalized focal loss against a NumPy transcription of RITM's NormalizedFocalLossSigmoid."""

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.training.loss import normalized_focal_loss


def numpy_nfl(logits, gt, alpha=0.5, gamma=2.0, eps=1e-12):
  logits = logits.astype(np.float64)
  one_hot = gt > 0.5
  weight = (gt != -1).astype(np.float64)
  pred = 1.0 / (1.0 + np.exp(-logits))
  alpha_map = np.where(one_hot, alpha, 1 - alpha)
  pt = np.where(weight > 0, 1.0 - np.abs(gt - pred), 1.0)
  beta = (1 - pt) ** gamma
  mult = weight.sum((-2, -1), keepdims=True) / (beta.sum((-2, -1), keepdims=True) + eps)
  loss = -alpha_map * beta * mult * np.log(np.minimum(pt + eps, 1.0)) * weight
  per_sample = loss.sum((-2, -1)) / (weight.sum((-2, -1)) + eps)
  return per_sample.mean()


def _example(seed=0, b=3, h=17, w=23):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 2.5, (b, h, w)).astype(np.float32)
  gt = (rng.random((b, h, w)) < 0.4).astype(np.int8)
  gt[rng.random((b, h, w)) < 0.15] = -1
  return logits, gt


def test_matches_numpy_oracle():
  for seed in range(3):
    logits, gt = _example(seed)
    got = float(normalized_focal_loss(jnp.asarray(logits), jnp.asarray(gt)))
    np.testing.assert_allclose(got, numpy_nfl(logits, gt), rtol=1e-5)


def test_ignored_pixels_do_not_matter():
  logits, gt = _example(4)
  changed = np.where(gt == -1, logits + 7.0, logits)
  a = normalized_focal_loss(jnp.asarray(logits), jnp.asarray(gt))
  b = normalized_focal_loss(jnp.asarray(changed), jnp.asarray(gt))
  np.testing.assert_allclose(float(a), float(b), rtol=1e-6)
  g = jax.grad(normalized_focal_loss)(jnp.asarray(logits), jnp.asarray(gt))
  assert np.all(np.asarray(g)[gt == -1] == 0)


def test_no_gradient_through_the_normalisation():
  logits, gt = _example(5)
  logits, gt = jnp.asarray(logits), jnp.asarray(gt)
  valid = (gt >= 0).astype(jnp.float32)

  def with_fixed_scale(x, scale):  # the same loss with the scale passed in as a constant
    p = jax.nn.sigmoid(x)
    pt = jnp.where(gt == 1, p, 1 - p)
    pt = jnp.where(valid > 0, pt, 1.0)
    alpha = jnp.where(gt == 1, 0.5, 0.5)
    log_pt = jnp.where(gt == 1, jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x))
    loss = -alpha * (1 - pt) ** 2 * scale * log_pt * valid
    return (loss.sum((1, 2)) / valid.sum((1, 2))).mean()

  p = jax.nn.sigmoid(logits)
  pt = jnp.where(valid > 0, jnp.where(gt == 1, p, 1 - p), 1.0)
  scale = valid.sum((1, 2), keepdims=True) / ((1 - pt) ** 2).sum((1, 2), keepdims=True)
  expected = jax.grad(with_fixed_scale)(logits, scale)
  got = jax.grad(normalized_focal_loss)(logits, gt)
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-4, atol=1e-7)
