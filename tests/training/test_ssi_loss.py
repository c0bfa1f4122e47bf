"""The scale-and-shift-invariant loss against a NumPy oracle, and its invariances."""

import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.training import ssi_loss


def _oracle_align(d, valid):
  """NumPy: (d - median) / mean |d - median| over the valid pixels of one map."""
  values = d[valid].astype(np.float64)
  t = np.median(values)
  s = np.mean(np.abs(values - t))
  out = np.zeros(d.shape)
  out[valid] = (values - t) / max(s, 1e-6)
  return out


def _oracle_loss(pred, target, valid, gradient_weight=0.0, scales=4):
  losses = []
  for p, t, v in zip(pred, target, valid):
    r = _oracle_align(p, v) - _oracle_align(t, v)
    loss = np.abs(r[v]).mean()
    grad = 0.0
    for k in range(scales):
      rs, vs = r[::2 ** k, ::2 ** k], v[::2 ** k, ::2 ** k]
      gx = np.abs(np.diff(rs, axis=1))[vs[:, 1:] & vs[:, :-1]].sum()
      gy = np.abs(np.diff(rs, axis=0))[vs[1:] & vs[:-1]].sum()
      grad += (gx + gy) / max(vs.sum(), 1)
    losses.append(loss + gradient_weight * grad)
  return np.mean(losses)


def _maps(seed, shape=(3, 17, 22)):
  rng = np.random.default_rng(seed)
  pred = rng.standard_normal(shape).astype(np.float32)
  target = rng.uniform(0.1, 1.0, shape).astype(np.float32)
  valid = rng.random(shape) < 0.7
  valid[1] = False
  valid[1, :4, :5] = True  # an even number of valid pixels (20): median of the middle two
  return pred, target, valid


@pytest.mark.parametrize("gradient_weight", [0.0, 0.5])
def test_ssi_loss_matches_numpy_oracle(gradient_weight):
  pred, target, valid = _maps(0)
  ours = float(ssi_loss.ssi_loss(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(valid), gradient_weight))
  ref = _oracle_loss(pred, target, valid, gradient_weight)
  np.testing.assert_allclose(ours, ref, rtol=2e-5)


def test_masked_median_even_and_odd_counts():
  x = jnp.asarray([[5.0, 1.0, 9.0, 3.0, 100.0], [4.0, 2.0, 8.0, 6.0, -50.0]])
  valid = jnp.asarray([[True, True, True, False, False], [True, True, True, True, False]])
  np.testing.assert_allclose(ssi_loss.masked_median(x, valid), [5.0, 5.0])


def test_ssi_loss_is_scale_and_shift_invariant():
  pred, target, valid = _maps(1)
  loss = lambda p, t: float(ssi_loss.ssi_loss(jnp.asarray(p), jnp.asarray(t), jnp.asarray(valid), 0.5))
  base = loss(pred, target)
  assert base > 0.1
  np.testing.assert_allclose(loss(3.7 * pred + 2.0, target), base, rtol=1e-5)
  np.testing.assert_allclose(loss(pred, 0.2 * target - 5.0), base, rtol=1e-5)
  assert loss(2.0 * target + 1.0, target) < 1e-5          # right up to scale and shift: zero
  # Invalid pixels do not count: changing them changes nothing.
  changed = np.where(valid, pred, 1e3).astype(np.float32)
  np.testing.assert_allclose(loss(changed, target), base, rtol=1e-6)
