"""The composed OIS model: split seg head, init from DAv2, frozen parts, inert slots, ablations."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.errors import CheckpointError
from ois_jax.models import dpt, ois
from ois_jax.models.prompts import Clicks
from ois_jax.models.seg_head import SegmentationHead



import ois_testlib as T  # shared tiny model, one per process (tests/conftest.py)

CLICKS = [[(30, 20, True), (70, 90, False), (40, 30, True)], [(60, 60, True), (10, 100, False)]]


@pytest.fixture(scope="module")
def base():
  model, params = T.full()
  encode, decode = T.fns(model)
  images = T.images()
  state = encode(params, images)
  clicks = T.clicks(CLICKS)
  prev = T.prev_mask()
  has_prev = jnp.array([True, True])
  out = decode(params, state, clicks, prev, has_prev)
  return dict(model=model, params=params, encode=encode, decode=decode, images=images, state=state,
              clicks=clicks, prev=prev, has_prev=has_prev, out=np.asarray(out))


def test_split_seg_head_equals_dpt_head_with_logit_output(base):
  feats = [jax.random.normal(jax.random.key(i), (1, 8, 8, 32)) for i in range(4)]
  params = {"params": base["params"]["seg_head"]}  # the tiny model's head: 16, (8, 16, 32, 32)
  head = SegmentationHead(16, (8, 16, 32, 32))
  ref = dpt.DPTHead(16, (8, 16, 32, 32), 1, final_relu=False)
  ref_shapes = jax.eval_shape(ref.init, jax.random.key(0), feats)
  # Same names and shapes as the DAv2 head: the depth head's weights copy over as they are.
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, ref_shapes)
  out = jax.jit(head.apply)(params, feats)
  np.testing.assert_allclose(out, jax.jit(ref.apply)(params, feats), rtol=1e-5, atol=1e-5)
  assert (np.asarray(out) < 0).any()  # a logit: no final ReLU


def test_image_state_and_logits(base):
  st = base["state"]
  assert st["depth"].shape == (2, 112, 112) and st["features"].shape == (2, 64, 32)
  assert float(st["depth"].min()) == 0.0 and float(st["depth"].max()) == 1.0
  assert base["out"].shape == (2, 112, 112) and base["out"].dtype == np.float32
  assert np.isfinite(base["out"]).all()


def test_outputs_respond_to_clicks_and_previous_mask(base):
  b = base
  other = T.clicks([[(90, 90, True)], [(20, 20, True)]])
  assert np.abs(np.asarray(b["decode"](b["params"], b["state"], other, b["prev"], b["has_prev"])) - b["out"]).max() > 1e-4
  flipped = 1.0 - b["prev"]
  assert np.abs(np.asarray(b["decode"](b["params"], b["state"], b["clicks"], flipped, b["has_prev"])) - b["out"]).max() > 1e-4
  # First round: the previous mask is ignored.
  no_prev = jnp.array([False, False])
  a = b["decode"](b["params"], b["state"], b["clicks"], b["prev"], no_prev)
  c = b["decode"](b["params"], b["state"], b["clicks"], flipped, no_prev)
  np.testing.assert_array_equal(a, c)


def test_empty_slots_are_inert_and_same_sign_order_does_not_matter(base):
  b = base
  ref = b["out"]
  # Same clicks, other slots: positives at 5 and 17, negatives at 40 (rest empty, with junk coords).
  coords = np.random.default_rng(0).uniform(0, 111, (2, 48, 2)).astype(np.float32)
  valid = np.zeros((2, 48), bool)
  for img, slots in ((0, {5: (30, 20), 17: (40, 30), 40: (70, 90)}), (1, {3: (60, 60), 33: (10, 100)})):
    for slot, yx in slots.items():
      coords[img, slot] = yx
      valid[img, slot] = True
  moved = b["decode"](b["params"], b["state"], Clicks(coords, valid), b["prev"], b["has_prev"])
  np.testing.assert_allclose(moved, ref, rtol=1e-4, atol=1e-4)
  # Same-sign order swapped.
  swapped = T.clicks([[(40, 30, True), (70, 90, False), (30, 20, True)], [(60, 60, True), (10, 100, False)]])
  np.testing.assert_allclose(b["decode"](b["params"], b["state"], swapped, b["prev"], b["has_prev"]), ref,
                             rtol=1e-4, atol=1e-4)


def test_gradients_reach_only_trainable_parameters(base):
  b = base
  mask = ois.trainable_mask(b["params"])

  def loss(p):
    st = ois.encode_image(b["model"], p, b["images"][:1])
    logits = ois.decode(b["model"], p, st, Clicks(b["clicks"].coords[:1], b["clicks"].valid[:1]),
                        b["prev"][:1], b["has_prev"][:1])
    return jnp.mean(jax.nn.softplus(logits) - logits * (b["prev"][:1] > 0.5))

  grads = jax.jit(jax.grad(loss))(b["params"])
  flat_g, flat_m = T.flatten(grads), T.flatten(mask)
  frozen = [k for k, m in flat_m.items() if not m]
  assert any(k.startswith("encoder/") for k in frozen) and any(k.startswith("depth_head/") for k in frozen)
  assert "pos_encoding/gaussian" in frozen
  assert all(k.split("/")[0] in ("encoder", "depth_head") or k == "pos_encoding/gaussian" for k in frozen)
  for k in frozen:
    assert not np.asarray(flat_g[k]).any(), k
  # Every trainable parameter gets a gradient, except refinenet4's stored-but-unused skip unit.
  dead = [k for k, m in flat_m.items() if m and not np.asarray(flat_g[k]).any()]
  assert all("refinenet4/resConfUnit1" in k for k in dead), dead


def test_init_from_depth_copies_encoder_and_both_heads(base, tmp_path):
  params = base["params"]
  rng = np.random.default_rng(0)
  dav2 = {"pretrained": jax.tree.map(lambda x: rng.normal(size=x.shape).astype(np.float32), params["encoder"]),
          "depth_head": jax.tree.map(lambda x: rng.normal(size=x.shape).astype(np.float32), params["depth_head"])}
  loaded = ois.init_from_depth(params, dav2)
  for key, src in (("encoder", "pretrained"), ("depth_head", "depth_head"), ("seg_head", "depth_head")):
    for a, e in zip(jax.tree.leaves(loaded[key]), jax.tree.leaves(dav2[src])):
      np.testing.assert_array_equal(a, e)
  np.testing.assert_array_equal(loaded["blocks_0"]["ffn"]["fc1"]["kernel"], params["blocks_0"]["ffn"]["fc1"]["kernel"])
  bad = dict(dav2, depth_head=dict(dav2["depth_head"], projects_0={"kernel": np.zeros((1, 1, 3, 3)),
                                                                   "bias": np.zeros(3)}))
  with pytest.raises(CheckpointError, match="projects_0/kernel: shape"):
    ois.init_from_depth(params, bad)
  with pytest.raises(CheckpointError, match="pretrained"):
    ois.init_from_depth(params, {"depth_head": dav2["depth_head"]})
  # From a converted DAv2 checkpoint directory.
  from ois_jax.checkpoint import save_checkpoint
  ckpt = save_checkpoint(str(tmp_path / "dav2"), dav2, {"model": "depth_anything_v2", "variant": "custom"})
  from_dir = ois.init_from_depth_checkpoint(params, ckpt)
  np.testing.assert_array_equal(from_dir["seg_head"]["projects_0"]["kernel"], dav2["depth_head"]["projects_0"]["kernel"])
  not_dav2 = save_checkpoint(str(tmp_path / "ois"), params, {"model": {"input_size": 112}})
  with pytest.raises(CheckpointError, match="not converted"):
    ois.init_from_depth_checkpoint(params, not_dav2)


ABLATIONS = [  # overrides, keys that must vanish (path substrings), keys that must stay
    (dict(use_order=False), ["order_attn"], ["object_attn"]),
    (dict(use_object=False), ["object_attn"], ["order_attn"]),
    (dict(use_sparse=False), ["blocks_0/ffn", "sparse_prompts", "pos_encoding", "token_attn"], ["dense_prompts"]),
    (dict(use_dense=False), ["dense_prompts"], ["blocks_0"]),
    (dict(block_order="order_first"), [], ["object_attn", "order_attn"]),
    (dict(order_maps="positive"), [], ["order_attn"]),
    (dict(order_maps="negative"), [], ["order_attn"]),
    (dict(depth_source="external"), ["depth_head/"], ["encoder/blocks_0/ls1"]),
    (dict(backbone="plain_vit", depth_source="external"), ["depth_head/", "encoder/blocks_0/ls1"],
     ["encoder/blocks_0/attn"]),
]


@pytest.mark.parametrize("overrides,absent,present", ABLATIONS, ids=lambda a: str(a))
def test_ablation_switch_removes_its_path_and_changes_outputs(base, overrides, absent, present):
  model = ois.build_model(T.tiny_model_config(**overrides))
  params = T.params_for(model)
  keys = list(T.flatten(params))
  full_keys = list(T.flatten(base["params"]))
  for sub in absent:
    assert any(sub in k for k in full_keys) and not any(sub in k for k in keys), sub
  for sub in present:
    assert any(sub in k for k in keys), sub
  encode, decode = T.fns(model)
  if model.config.depth_source == "external":
    depth = jnp.asarray(np.tile(np.linspace(0, 5, 112, dtype=np.float32), (2, 112, 1)))
    state = encode(params, base["images"], depth)
    # The external depth really drives the order maps.
    state_flip = encode(params, base["images"], depth.transpose(0, 2, 1))  # ramp along y
    out_flip = decode(params, state_flip, base["clicks"], base["prev"], base["has_prev"])
  elif overrides.get("backbone"):
    state = encode(params, base["images"])
  else:  # prompt-side switches: the image state is the full model's (saves a compile)
    state = base["state"]
  out = np.asarray(decode(params, state, base["clicks"], base["prev"], base["has_prev"]))
  assert np.isfinite(out).all()
  assert np.abs(out - base["out"]).max() > 1e-4
  if model.config.depth_source == "external":
    assert np.abs(out - np.asarray(out_flip)).max() > 1e-4


def test_invalid_switches_are_rejected():
  with pytest.raises(ValueError, match="plain_vit"):
    ois.build_model(T.tiny_model_config(backbone="plain_vit"))
  with pytest.raises(ValueError, match="both False"):
    ois.build_model(T.tiny_model_config(use_sparse=False, use_dense=False))
  with pytest.raises(ValueError, match="order_maps"):
    ois.build_model(T.tiny_model_config(order_maps="all"))
  with pytest.raises(ValueError, match="model.attention must be one of"):
    ois.build_model(T.tiny_model_config(attention="flash"))


def test_external_depth_is_required_when_configured(base):
  model = ois.build_model(T.tiny_model_config(depth_source="external"))
  with pytest.raises(ValueError, match="external"):
    jax.eval_shape(lambda p, x: ois.encode_image(model, p, x), T.param_shapes(model), base["images"])


def test_ablation_configs_build_with_their_switch():
  from ois_jax.configs import ois_ablation
  for name, switches in ois_ablation.ABLATIONS.items():
    cfg = ois_ablation.get_config(f"{name},tiny")
    model = ois.build_model(cfg.model)
    for key, value in switches.items():
      assert getattr(model.config, key) == value, (name, key)
  with pytest.raises(ValueError, match="unknown ablation"):
    ois_ablation.get_config("no_everything")


def test_fine_prompt_levels_start_as_a_no_op_and_then_reach_the_mask(base):
  model = ois.build_model(T.tiny_model_config(fine_prompt_levels=2))
  init = ois.init_params(model, jax.random.key(1))
  keys = list(T.flatten(init))
  for part in ("skip_prompts_0/attn", "skip_prompts_0/disk_conv", "skip_prompts_1/out_proj"):
    assert any(part in k for k in keys), part
  assert not any("skip_prompts_2" in k for k in keys)
  # Zero-initialised outputs: with the base model's weights elsewhere, the logits are the base's.
  fresh = {k: base["params"].get(k, v) for k, v in init.items()}
  _, decode = T.fns(model)
  out = np.asarray(decode(fresh, base["state"], base["clicks"], base["prev"], base["has_prev"]))
  np.testing.assert_allclose(out, base["out"], atol=1e-6)
  # Trained (non-zero) outputs: the clicks now reach the finer levels, and the logits move.
  trained = T.params_for(model)
  moved = np.asarray(decode(trained, base["state"], base["clicks"], base["prev"], base["has_prev"]))
  assert np.abs(moved - base["out"]).max() > 1e-4
  other = T.clicks([[(90, 90, True)], [(20, 20, True)]])
  assert np.abs(np.asarray(decode(trained, base["state"], other, base["prev"], base["has_prev"])) - moved).max() > 1e-4
  with pytest.raises(ValueError, match="fine_prompt_levels must be 0-3"):
    ois.build_model(T.tiny_model_config(fine_prompt_levels=4))


def _without_token_order(params):
  """The token grid's order-aware attention made inert (sigma = softplus(-30) ~ 1e-13), and the
  skip levels' attention outputs made as large as trained ones (the test's random 0.02 is tiny)."""
  flat = T.flatten(params)
  def pick(path, v):
    key = "/".join(str(p.key) for p in path)
    if key.startswith("blocks_") and key.endswith("sigma_raw"):
      return jnp.full_like(v, -30.0)
    return v * 50.0 if key.startswith("skip_prompts_") and "out_proj/kernel" in key else v
  assert any(k.startswith("blocks_") and k.endswith("sigma_raw") for k in flat)
  return jax.tree_util.tree_map_with_path(pick, params)


@pytest.mark.parametrize("fine_order", [False, True])
def test_fine_order_brings_the_depth_to_the_skip_levels(base, fine_order):
  """With the token grid's order bias switched off, the depth reaches the logits only through
  the skip levels' order-aware attention: with fine_order it does, without it nothing moves."""
  model = ois.build_model(T.tiny_model_config(fine_prompt_levels=2, fine_order=fine_order,
                                              depth_source="external"))
  params = _without_token_order(T.params_for(model))
  keys = list(T.flatten(params))
  assert any("skip_prompts_1/sigma_raw" in k for k in keys) == fine_order
  encode, decode = T.fns(model)
  ramp = np.tile(np.linspace(0, 1, 112, dtype=np.float32), (2, 112, 1))
  outs = [np.asarray(decode(params, encode(params, base["images"], jnp.asarray(d)), base["clicks"],
                            base["prev"], base["has_prev"])) for d in (ramp, ramp.transpose(0, 2, 1))]
  assert np.isfinite(outs[0]).all()
  moved = np.abs(outs[0] - outs[1]).max()
  assert (moved > 1e-4) if fine_order else (moved < 1e-6), moved


def test_fine_order_needs_fine_levels_and_is_off_in_the_order_ablation():
  with pytest.raises(ValueError, match="fine_order .* needs model.fine_prompt_levels > 0"):
    ois.build_model(T.tiny_model_config(fine_order=True))
  ablated = ois.build_model(T.tiny_model_config(fine_prompt_levels=1, fine_order=True, use_order=False))
  assert not any("sigma_raw" in k for k in T.flatten(T.param_shapes(ablated)))
