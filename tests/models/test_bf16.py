"""bfloat16 as a precision policy (`model.dtype = "bfloat16"`), against float32 on the same weights.

Parameters and optimizer state stay float32; convolutions, projections and MLPs compute in
bfloat16; the ViT residual stream, LayerNorm statistics, attention logits and softmax, depth,
order maps, the output logits and the loss stay float32.

Tolerances. bfloat16 keeps 8 mantissa bits: each rounding is off by up to 2^-9 = 0.2 %. A chain
of ~25 rounded layers with independent errors lands near sqrt(25) x 0.2 % = 1 % relative (L2),
which is what is measured on the 2-core CPU (random weights, seed 0):
  ViT-S encoder levels 0.53 / 0.62 / 0.67 / 0.70 %   -> tolerance 2 %
  ViT-S depth 2.8 %: the head's ~20 layers reach 1.3 % before its last 1x1 conv (32 -> 1), whose
    random weights cancel ~3x of the signal and so amplify the relative error -> tolerance 6 %
  tiny OIS logits 1.8 %, probabilities at most 0.006 apart             -> 5 %, 0.02
  10 training steps: per-step losses within 0.3 % of the initial loss    -> 2 %
Every comparison runs with full-precision matmuls, so on GPUs the float32 side is not TF32.
`python -m pytest tests/models/test_bf16.py -q -s` prints the measured values.
"""

import jax
import jax.numpy as jnp
import numpy as np
import ois_testlib as lib
import pytest

from ois_jax.configs import ois_tiny
from ois_jax.models import ois, vit
from ois_jax.models.depth import DepthAnythingV2
from ois_jax.training import sharding, train_step as ts

FEATURE_TOL = 0.02
DEPTH_TOL = 0.06
LOGITS_TOL = 0.05
PROB_TOL = 0.02
LOSS_TOL = 0.02


def rel_l2(got, want):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@pytest.fixture(autouse=True)
def full_precision_matmuls():
  with jax.default_matmul_precision("highest"):
    yield


def test_bf16_depth_vits_is_within_tolerance_of_fp32():
  fp32, bf16 = DepthAnythingV2("vits"), DepthAnythingV2("vits", dtype=jnp.bfloat16)
  params = fp32.random_params(seed=0)
  images = jnp.asarray(np.random.default_rng(0).standard_normal((2, 140, 140, 3)), jnp.float32)
  run = lambda model: jax.jit(lambda p, x: model.apply({"params": p}, x, return_features=True))
  depth32, feats32 = run(fp32)(params, images)
  depth16, feats16 = run(bf16)(params, images)
  assert depth16.dtype == jnp.float32 and all(f.dtype == jnp.bfloat16 for f in feats16)
  levels = [rel_l2(f16, f32) for f16, f32 in zip(feats16, feats32)]
  print(f"\nbf16 vs fp32, ViT-S at 140 px: encoder levels rel L2 {levels}, "
        f"depth rel L2 {rel_l2(depth16, depth32):.4f}")
  assert all(0 < x < FEATURE_TOL for x in levels), levels
  assert 0 < rel_l2(depth16, depth32) < DEPTH_TOL, rel_l2(depth16, depth32)


def test_bf16_residual_stream_keeps_small_block_updates():
  """DINOv2-like stream: large activations (~100), small LayerScale (1e-3). A bfloat16 stream
  (spacing 0.5 at 100) would round the block's update away; the float32 stream keeps it."""
  x = 100.0 + jax.random.normal(jax.random.key(0), (1, 17, 64))
  block32 = vit.Block(num_heads=2)
  params = block32.init(jax.random.key(1), x)
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: jnp.full_like(p, 1e-3) if path[-2].key.startswith("ls") else p, params)
  update32 = block32.apply(params, x) - x
  out16 = vit.Block(num_heads=2, dtype=jnp.bfloat16).apply(params, x)
  assert out16.dtype == jnp.float32
  print(f"\nbf16 block update vs fp32, stream ~100, LayerScale 1e-3: rel L2 {rel_l2(out16 - x, update32):.4f}")
  assert rel_l2(out16 - x, update32) < FEATURE_TOL


def test_bf16_ois_decode_is_within_tolerance_of_fp32():
  model32, params = lib.full()
  model16 = ois.build_model(lib.tiny_model_config(dtype="bfloat16"))
  images = lib.images(2)
  clicks = lib.clicks([[(30, 40, True), (80, 20, False)], [(56, 56, True)]])
  prev, has_prev = lib.prev_mask(2), jnp.ones((2,), bool)
  out = {}
  for name, model in (("fp32", model32), ("bf16", model16)):
    encode, decode = lib.fns(model)
    state = encode(params, images)
    out[name] = (state, decode(params, state, clicks, prev, has_prev))
  state16, logits16 = out["bf16"]
  _, logits32 = out["fp32"]
  assert state16["features"].dtype == jnp.bfloat16 and state16["depth"].dtype == jnp.float32
  assert logits16.dtype == jnp.float32
  assert 0 < rel_l2(logits16, logits32) < LOGITS_TOL, rel_l2(logits16, logits32)
  prob_diff = float(jnp.abs(jax.nn.sigmoid(logits16) - jax.nn.sigmoid(logits32)).max())
  print(f"\nbf16 vs fp32, tiny OIS: logits rel L2 {rel_l2(logits16, logits32):.4f}, "
        f"max probability difference {prob_diff:.4f}")
  assert prob_diff < PROB_TOL, prob_diff


def _fixed_init_fns(params):
  """The real model functions, except that init_params returns given parameters (so both dtypes
  start from the same weights, and no init has to be compiled)."""
  import dataclasses
  fixed = jax.tree.map(np.asarray, params)
  return dataclasses.replace(ts.ois_fns(), init_params=lambda model, rng: jax.tree.map(jnp.asarray, fixed))


def _fixed_batch(size, batch=2):
  """A bright rectangle to segment from one click in its centre."""
  gt = np.zeros((batch, size, size), np.int8)
  gt[:, size // 4: 3 * size // 4, size // 3: 2 * size // 3] = 1
  images = np.random.default_rng(0).normal(size=(batch, size, size, 3)).astype(np.float32)
  images += gt[..., None]
  coords = np.zeros((batch, 48, 2), np.float32)
  coords[:, 0] = size // 2
  valid = np.zeros((batch, 48), bool)
  valid[:, 0] = True
  return {"image": images, "gt": gt, "click_coords": coords, "click_valid": valid}


def _train(dtype, steps=10):
  cfg = ois_tiny.get_config()
  cfg.model.dtype = dtype
  cfg.model.num_blocks = 1           # smaller graph, faster compile
  cfg.data.batch_size = 2
  cfg.data.max_iterative_rounds = 0  # a fixed objective on the fixed batch
  cfg.train.learning_rate = 3e-4
  mesh = sharding.make_mesh(cfg)
  model = ois.build_model(cfg.model)
  fns = _fixed_init_fns(lib.params_for(model))
  state, shardings, tx, mask = ts.create_train_state(model, cfg, fns, mesh, jax.random.key(0))
  step = ts.jit_train_step(ts.make_train_step(model, cfg, fns, tx, mask), shardings, mesh)
  batch = sharding.shard_batch(_fixed_batch(int(cfg.model.input_size)), cfg, mesh)
  losses = []
  for _ in range(steps):
    state, metrics = step(state, batch, jax.random.key(1))
    losses.append(float(metrics["loss"]))
  return state, np.array(losses)


def test_bf16_training_steps_lower_the_loss_like_fp32():
  _, losses32 = _train("float32")
  state16, losses16 = _train("bfloat16")
  print(f"\nlosses fp32 {np.round(losses32, 4).tolist()}\nlosses bf16 {np.round(losses16, 4).tolist()}\n"
        f"max |bf16 - fp32| / initial loss {np.abs(losses16 - losses32).max() / losses32[0]:.4f}")
  assert losses32[-1] < 0.85 * losses32[0], losses32
  assert losses16[-1] < 0.85 * losses16[0], losses16
  np.testing.assert_allclose(losses16, losses32, rtol=0, atol=LOSS_TOL * losses32[0])
  # Master weights and Adam moments stay float32 under the bfloat16 policy.
  floats = [x for x in jax.tree.leaves(state16) if jnp.issubdtype(x.dtype, jnp.floating)]
  assert floats and all(x.dtype == jnp.float32 for x in floats)
