"""Object-aware and order-aware masked cross-attention, and the block structure."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.models import attention, order
from ois_jax.models.prompts import Clicks

B, N, T, C = 2, 48, 16, 16


def _inputs(seed=0):
  k = jax.random.split(jax.random.key(seed), 3)
  s = jax.random.normal(k[0], (B, N, C))
  feats = jax.random.normal(k[1], (B, T, C))
  return s, feats


def _weights(module, params, *args):
  _, state = module.apply(params, *args, mutable=["intermediates"])
  return np.asarray(jax.tree.leaves(state["intermediates"])[0])  # (B, heads, N, T)


def _allowed_from_mask(fg_tokens):
  """fg_tokens (B, T) bool -> (B, N, T): positives see fg, negatives bg (token-aligned mask)."""
  fg = jnp.asarray(fg_tokens)
  return jnp.concatenate([jnp.repeat(fg[:, None], 24, 1), jnp.repeat(~fg[:, None], 24, 1)], 1)


def test_object_aware_weights_are_exactly_zero_outside_the_allowed_region():
  s, feats = _inputs()
  rng = np.random.default_rng(0)
  fg = rng.random((B, T)) < 0.4
  allowed = _allowed_from_mask(fg)
  module = attention.ObjectAwareAttention(C, 2)
  params = module.init(jax.random.key(1), s, feats, feats, allowed)
  w = _weights(module, params, s, feats, feats, allowed)
  pos, neg = w[:, :, :24], w[:, :, 24:]
  assert np.all(pos[np.broadcast_to(~fg[:, None, None, :], pos.shape)] == 0.0)
  assert np.all(neg[np.broadcast_to(fg[:, None, None, :], neg.shape)] == 0.0)
  assert (pos[np.broadcast_to(fg[:, None, None, :], pos.shape)] > 0).all()
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)


def test_object_regions_from_a_previous_mask_drive_the_attention():
  s, feats = _inputs()
  prev = np.zeros((B, 56, 56), np.float32)
  prev[:, :28] = 1.0  # top half foreground: tokens 0..7 of the 4x4 grid
  allowed = order.object_regions(jnp.asarray(prev), jnp.ones((B,), bool), 24, 24)
  module = attention.ObjectAwareAttention(C, 2)
  params = module.init(jax.random.key(1), s, feats, feats, allowed)
  w = _weights(module, params, s, feats, feats, allowed)
  assert np.all(w[:, :, :24, 8:] == 0) and np.all(w[:, :, 24:, :8] == 0)


def test_empty_allowed_region_falls_back_to_plain_attention_without_nan():
  s, feats = _inputs()
  allowed = _allowed_from_mask(np.ones((B, T), bool))  # negatives: no background at all
  module = attention.ObjectAwareAttention(C, 2)
  params = module.init(jax.random.key(1), s, feats, feats, allowed)
  w = _weights(module, params, s, feats, feats, allowed)
  plain = _weights(module, params, s, feats, feats, jnp.ones((B, N, T), bool))
  assert np.isfinite(w).all()
  np.testing.assert_allclose(w[:, :, 24:], plain[:, :, 24:], rtol=1e-6)
  out = module.apply(params, s, feats, feats, allowed)
  assert np.isfinite(np.asarray(out)).all()
  # Gradients stay finite too.
  g = jax.grad(lambda p: module.apply(p, s, feats, feats, allowed).sum())(params)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(g))


def test_large_sigma_concentrates_order_attention_at_the_clicked_depth():
  s, feats = _inputs()
  depth = np.zeros((B, 56, 56), np.float32)
  depth[:, :, 28:] = 1.0  # right half far
  c = Clicks.from_lists([[(10, 5, True), (10, 50, False)]] * B)
  m = order.order_maps_tokens(jnp.asarray(depth), c.coords, c.valid, 24)
  near_left = np.tile(np.array([True, True, False, False]), 4)  # token columns 0-1 = left half
  weak = attention.OrderAwareAttention(C, 2, sigma_init=1e-3)
  strong = attention.OrderAwareAttention(C, 2, sigma_init=1e4)
  params = strong.init(jax.random.key(1), s, feats, feats, m)
  w_strong = _weights(strong, params, s, feats, feats, m)
  w_weak = _weights(weak, weak.init(jax.random.key(1), s, feats, feats, m), s, feats, feats, m)
  # Positive slot clicked on the left (depth 0): all attention on the left tokens.
  np.testing.assert_allclose(w_strong[:, :, 0, near_left].sum(-1), 1.0, atol=1e-6)
  # Negative slot clicked on the right: all attention on the right tokens.
  np.testing.assert_allclose(w_strong[:, :, 24, ~near_left].sum(-1), 1.0, atol=1e-6)
  # With a tiny sigma the same slot spreads attention over both halves.
  assert (w_weak[:, :, 0, ~near_left].sum(-1) > 0.05).all()
  # Empty slots (zero order map) are unaffected by sigma: plain attention.
  np.testing.assert_allclose(w_strong[:, :, 30], w_weak[:, :, 30], rtol=1e-5)


def test_sigma_is_positive_learned_and_gets_gradients():
  s, feats = _inputs()
  m = jax.random.uniform(jax.random.key(3), (B, N, T))
  module = attention.OrderAwareAttention(C, 2, sigma_init=2.0)
  params = module.init(jax.random.key(1), s, feats, feats, m)
  assert float(jax.nn.softplus(params["params"]["sigma_raw"])) == pytest.approx(2.0, rel=1e-5)
  g = jax.grad(lambda p: (module.apply(p, s, feats, feats, m) ** 2).sum())(params)
  assert float(jnp.abs(g["params"]["sigma_raw"])) > 0


@pytest.mark.parametrize("use_object,use_order", [(True, True), (False, True), (True, False), (False, False)])
def test_block_switches_remove_their_parameters(use_object, use_order):
  s, feats = _inputs()
  m = jnp.zeros((B, N, T))
  allowed = jnp.ones((B, N, T), bool)
  block = attention.PromptBlock(C, 2, 32, use_object, use_order)
  params = block.init(jax.random.key(0), s, feats, feats, m, allowed)["params"]
  assert ("object_attn" in params) == use_object
  assert ("order_attn" in params) == use_order
  assert "ffn" in params


def test_block_order_switch_changes_the_output_with_the_same_parameters():
  s, feats = _inputs()
  m = jax.random.uniform(jax.random.key(3), (B, N, T))
  allowed = _allowed_from_mask(np.random.default_rng(1).random((B, T)) < 0.5)
  first = attention.PromptBlock(C, 2, 32, block_order="object_first")
  second = attention.PromptBlock(C, 2, 32, block_order="order_first")
  params = first.init(jax.random.key(0), s, feats, feats, m, allowed)
  assert jax.tree.structure(params) == jax.tree.structure(
      second.init(jax.random.key(0), s, feats, feats, m, allowed))
  a = first.apply(params, s, feats, feats, m, allowed)
  b = second.apply(params, s, feats, feats, m, allowed)
  assert float(jnp.abs(a - b).max()) > 1e-3
  with pytest.raises(ValueError, match="block_order"):
    attention.PromptBlock(C, 2, 32, block_order="sideways").init(jax.random.key(0), s, feats, feats, m, allowed)
