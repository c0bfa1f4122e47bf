"""The CPU-blocked self-attention must equal the plain form, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.models import vit


@pytest.mark.parametrize("b,h,n,d,block_bytes", [
    (1, 6, 1370, 16, vit.ATTENTION_BLOCK_BYTES),  # 518 px grid: 2 blocks, 0 padding rows
    (2, 3, 101, 8, 101 * 4 * 7),                  # 15 blocks of 7 rows, 4 padding rows
    (1, 2, 5, 4, 10**9),                          # one block
])
def test_blocked_attention_equals_plain(b, h, n, d, block_bytes):
  q, k, v = jax.random.normal(jax.random.key(n), (3, b, h, n, d))
  want = vit.plain_attention(q, k, v)
  got = vit.blocked_attention(q, k, v, block_bytes=block_bytes)
  assert got.shape == (b, h, n, d)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_blocked_attention_gradients_equal_plain():
  q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 2, 37, 8))
  loss = lambda fn: lambda q, k, v: jnp.sum(jnp.sin(fn(q, k, v)))
  blocked = lambda q, k, v: vit.blocked_attention(q, k, v, block_bytes=37 * 4 * 5)
  for want, got in zip(jax.grad(loss(vit.plain_attention), (0, 1, 2))(q, k, v),
                       jax.grad(loss(blocked), (0, 1, 2))(q, k, v)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_attention_module_lowers_the_blocked_loop_on_cpu():
  """On CPU the jitted ViT attention contains the block loop; the plain form has none."""
  module = vit.Attention(num_heads=2)
  x = jnp.ones((1, 50, 16))
  params = module.init(jax.random.key(0), x)
  hlo = jax.jit(module.apply).lower(params, x).as_text()
  assert "while" in hlo
  assert "while" not in jax.jit(vit.plain_attention).lower(*(jnp.ones((1, 2, 50, 8)),) * 3).as_text()
