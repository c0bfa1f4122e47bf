"""ViT self-attention implementations (`model.attention`): equal values and gradients wherever they
run, the right one chosen per platform, and bounded memory for large token counts.

Comparisons run with full-precision matmuls (`jax.default_matmul_precision("highest")`): on recent
NVIDIA GPUs XLA's default float32 matmul is TF32, which alone would exceed these tolerances.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.errors import ConfigError
from ois_jax.models import vit

CPU_ONLY = jax.default_backend() == "cpu"


def runnable_implementations(dtype=jnp.float32):
  """The implementations that run here: all but cuDNN, which needs an NVIDIA GPU and 16-bit dtypes."""
  impls = ["xla", "blocked", "auto"]
  if vit.cudnn_supported(jax.ShapeDtypeStruct((1, 1, 1, 16), dtype)):
    impls.append("cudnn")
  return impls


def reference_attention(q, k, v):
  """The formula in float64 NumPy. (B, N, heads, hd) -> (B, N, heads, hd)."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  logits = np.einsum("bnhd,bmhd->bhnm", q, k) / np.sqrt(q.shape[-1])
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  return np.einsum("bhnm,bmhd->bnhd", weights, v)


@pytest.mark.parametrize("b,h,n,d,block_bytes", [
    (1, 6, 1370, 16, vit.ATTENTION_BLOCK_BYTES),  # 518 px grid: 2 blocks, 0 padding rows
    (2, 3, 101, 8, 101 * 4 * 7),                  # 15 blocks of 7 rows, 4 padding rows
    (1, 2, 5, 4, 10**9),                          # one block
])
def test_blocked_attention_equals_plain(b, h, n, d, block_bytes):
  q, k, v = jax.random.normal(jax.random.key(n), (3, b, h, n, d))
  with jax.default_matmul_precision("highest"):
    want = vit.plain_attention(q, k, v)
    got = vit.blocked_attention(q, k, v, block_bytes=block_bytes)
  assert got.shape == (b, h, n, d)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_blocked_attention_gradients_equal_plain():
  q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 2, 37, 8))
  loss = lambda fn: lambda q, k, v: jnp.sum(jnp.sin(fn(q, k, v)))
  blocked = lambda q, k, v: vit.blocked_attention(q, k, v, block_bytes=37 * 4 * 5)
  with jax.default_matmul_precision("highest"):
    for want, got in zip(jax.grad(loss(vit.plain_attention), (0, 1, 2))(q, k, v),
                         jax.grad(loss(blocked), (0, 1, 2))(q, k, v)):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


# N = 1601 tokens (a 40 x 40 grid + class token): 10 MB of logits per head, so the default
# 4 MB blocks split each head into 3 blocks of 534 rows (1 padding row).
QKV_SHAPE = (3, 1, 1601, 2, 16)


@pytest.mark.parametrize("implementation", runnable_implementations())
def test_every_implementation_equals_the_formula_float32(implementation):
  q, k, v = jax.random.normal(jax.random.key(1), QKV_SHAPE)
  with jax.default_matmul_precision("highest"):
    got = jax.jit(vit.self_attention, static_argnums=3)(q, k, v, implementation)
  np.testing.assert_allclose(got, reference_attention(q, k, v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", runnable_implementations(jnp.bfloat16))
def test_every_implementation_in_bfloat16_is_close_to_the_formula(implementation):
  """bfloat16 inputs: float32 logits and softmax keep the error at the inputs' rounding (~0.4 %)."""
  q, k, v = jax.random.normal(jax.random.key(2), QKV_SHAPE).astype(jnp.bfloat16)
  with jax.default_matmul_precision("highest"):
    got = jax.jit(vit.self_attention, static_argnums=3)(q, k, v, implementation)
  assert got.dtype == jnp.bfloat16
  want = reference_attention(q, k, v)
  rel = np.linalg.norm(np.asarray(got, np.float64) - want) / np.linalg.norm(want)
  assert rel < 1e-2, rel


@pytest.mark.parametrize("implementation", runnable_implementations())
def test_every_implementation_has_the_formulas_gradients(implementation):
  q, k, v = jax.random.normal(jax.random.key(3), QKV_SHAPE)
  loss = lambda impl: lambda q, k, v: jnp.sum(jnp.sin(vit.self_attention(q, k, v, impl)) * v)
  with jax.default_matmul_precision("highest"):
    want = jax.jit(jax.grad(loss("xla"), (0, 1, 2)))(q, k, v)
    got = jax.jit(jax.grad(loss(implementation), (0, 1, 2)))(q, k, v)
    # The XLA path itself against autodiff of the float32 plain formula in the same layout.
    heads_first = lambda x: x.transpose(0, 2, 1, 3)
    plain = lambda q, k, v: heads_first(vit.plain_attention(heads_first(q), heads_first(k), heads_first(v)))
    formula = jax.jit(jax.grad(lambda q, k, v: jnp.sum(jnp.sin(plain(q, k, v)) * v), (0, 1, 2)))(q, k, v)
  for g_want, g_got, g_formula in zip(want, got, formula):
    np.testing.assert_allclose(g_got, g_want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_want, g_formula, rtol=1e-4, atol=1e-5)


def test_attention_module_is_the_same_function_under_every_implementation():
  """Same parameters, same outputs and parameter gradients (what training and the ONNX export see)."""
  x = jax.random.normal(jax.random.key(4), (2, 50, 32))
  params = vit.Attention(num_heads=2).init(jax.random.key(5), x)
  results = {}
  with jax.default_matmul_precision("highest"):
    for impl in runnable_implementations():
      module = vit.Attention(num_heads=2, implementation=impl)
      out, grads = jax.jit(jax.value_and_grad(lambda p: jnp.sum(module.apply(p, x) ** 2)))(params)
      results[impl] = (out, grads)
  want_out, want_grads = results["xla"]
  for impl, (out, grads) in results.items():
    np.testing.assert_allclose(out, want_out, rtol=1e-5, err_msg=impl)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=impl)


def test_cudnn_where_it_cannot_run_is_one_clear_error():
  q = jnp.ones((1, 10, 2, 16), jnp.float32)  # float32: never cuDNN flash attention
  with pytest.raises(ConfigError, match="model.attention='cudnn' needs an NVIDIA GPU"):
    vit.self_attention(q, q, q, "cudnn")
  if CPU_ONLY:
    with pytest.raises(ConfigError, match="on cpu"):
      vit.self_attention(q.astype(jnp.bfloat16), q.astype(jnp.bfloat16), q.astype(jnp.bfloat16), "cudnn")
  with pytest.raises(ConfigError, match="must be one of"):
    vit.self_attention(q, q, q, "flash")


def _lowered_text(implementation, n, dtype=jnp.float32, platform="cpu", heads=2, head_dim=16):
  spec = jax.ShapeDtypeStruct((1, n, heads, head_dim), dtype)
  fn = jax.jit(lambda q: vit.self_attention(q, q, q, implementation))
  return jax.export.export(fn, platforms=[platform])(spec).mlir_module()


def test_auto_chooses_per_platform_when_lowering():
  """auto: the block loop on CPU; elsewhere the plain formula unless its logits are too large."""
  assert "while" in _lowered_text("auto", 50, platform="cpu")
  big = 20_000  # 2 x 20,000^2 x 4 B = 3.2 GB of logits > PLAIN_ATTENTION_MAX_BYTES
  assert 2 * big * big * 4 > vit.PLAIN_ATTENTION_MAX_BYTES
  for platform in ("cuda", "tpu"):
    assert "while" not in _lowered_text("auto", 50, platform=platform)
    assert "while" in _lowered_text("auto", big, platform=platform)
  if CPU_ONLY:  # without a local GPU, cuda lowering cannot take cuDNN: no custom call
    assert "custom_call" not in _lowered_text("auto", 50, jnp.bfloat16, platform="cuda")


@pytest.mark.parametrize("platform", ["cpu", "cuda"])
def test_xla_is_a_plain_formula_onnx_converters_can_express(platform):
  """No loop, no custom call: dot_general, exp, reductions and elementwise ops only."""
  for dtype in (jnp.float32, jnp.bfloat16):
    text = _lowered_text("xla", 50, dtype, platform)
    assert "dot_general" in text
    assert "while" not in text and "custom_call" not in text


def test_vitb_2048_config_keeps_attention_bounded_on_every_platform():
  """2044 px = 146^2 tokens: 22 GB of plain logits per layer, so `auto` must take a bounded path
  (on CPU and, in float32, everywhere: the blocked loop; cuDNN needs a real GPU to be chosen)."""
  from ois_jax.configs import ois_vitb_2048
  from ois_jax.models import ois
  c = ois.OISConfig.from_config(ois_vitb_2048.get_config().model)
  assert (c.encoder, c.input_size, c.grid, c.attention) == ("vitb", 2044, 146, "auto")
  n, (_, _, heads, _) = c.grid**2 + 1, c.encoder_dims
  assert heads * n * n * 4 > 20e9
  for platform in ("cpu", "cuda", "tpu"):
    assert "while" in _lowered_text(c.attention, n, platform=platform, heads=heads, head_dim=64)


def _encoder_temp_bytes(implementation, grid, embed_dim=32, heads=2):
  """Temporary bytes of a 1-block ViT forward at a (grid x grid) token grid, compiled for the CPU
  (whatever the default backend) and not run."""
  model = vit.DinoVisionTransformer(embed_dim, 1, heads, (0,), attention=implementation)
  on_cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
  spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=on_cpu)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 3)))
  params = jax.tree.map(lambda p: spec(p.shape, p.dtype), params)
  images = spec((1, 14 * grid, 14 * grid, 3), jnp.float32)
  return jax.jit(model.apply).lower(params, images).compile().memory_analysis().temp_size_in_bytes


def test_blocked_attention_memory_is_linear_in_tokens_where_plain_is_quadratic():
  """A small ViT with many tokens (100 x 100 grid: N = 10,001), from the compiled CPU executable's
  memory analysis: the plain formula holds heads x N^2 float32 logits (800 MB); the blocked
  loop one (rows, N) block (4 MB on CPU) plus O(N x D) activations."""
  embed_dim, heads = 32, 2
  temps = {}
  for grid in (50, 100):
    n = grid * grid + 1
    plain = _encoder_temp_bytes("xla", grid, embed_dim, heads)
    blocked = _encoder_temp_bytes("blocked", grid, embed_dim, heads)
    assert plain >= heads * n * n * 4, (grid, plain)
    # Activations: the MLP's (N, 4D) hidden layer and a few (N, 3D) / (N, D) buffers.
    assert blocked <= 2 * vit.ATTENTION_BLOCK_BYTES + 32 * n * embed_dim * 4, (grid, blocked)
    temps[grid] = plain, blocked
  # 4x the tokens: plain grows ~16x, blocked at most ~4x.
  assert temps[100][0] / temps[50][0] > 12
  assert temps[100][1] / temps[50][1] < 4


def test_model_attention_reaches_the_encoders_of_ois_and_depth():
  """`model.attention` is plumbed through OISConfig and DepthAnythingV2 (the loop appears only
  for blocked), and the tiny OIS image state is the same under xla and blocked."""
  import ois_testlib

  from ois_jax.models import ois
  from ois_jax.models.depth import DepthAnythingV2
  images = jax.ShapeDtypeStruct((1, 56, 56, 3), jnp.float32)
  for impl, has_loop in (("xla", False), ("blocked", True)):
    depth = DepthAnythingV2("vits", attention=impl)
    params = jax.eval_shape(depth.init, jax.random.key(0), images)
    assert ("while" in jax.jit(depth.apply).lower(params, images).as_text()) == has_loop, impl
  _, params = ois_testlib.full()
  states = {}
  with jax.default_matmul_precision("highest"):
    for impl in ("xla", "blocked"):
      model = ois.build_model(ois_testlib.tiny_model_config(attention=impl))
      assert model.config.attention == impl
      encode = jax.jit(lambda p, x, model=model: ois.encode_image(model, p, x))
      assert ("while" in encode.lower(params, ois_testlib.images(2)).as_text()) == (impl == "blocked")
      states[impl] = encode(params, ois_testlib.images(2))
  for key in states["xla"]:
    np.testing.assert_allclose(states["blocked"][key], states["xla"][key], rtol=1e-5, atol=1e-5, err_msg=key)
