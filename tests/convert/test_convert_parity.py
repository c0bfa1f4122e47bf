"""Converter + Flax DepthAnythingV2 vs Hugging Face DepthAnythingForDepthEstimation (fp32, random weights).

At 518 x 518 no position-embedding interpolation happens and both references agree. At other sizes
HF resizes the table to exactly (h/14, w/14) while DAv2 uses scale_factor (grid + 0.1) / 37, so:
- HF parity at a non-square size runs our model with pos_embed_mode="hf";
- the "original" mode is checked against torch's F.interpolate(scale_factor=...) directly, and end to
  end against the HF model with DAv2's interpolation patched in (see conftest.original_pos_embed).
Tolerance: max abs error <= 1e-4 x the reference's max abs value, features and depth alike.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.convert import from_state_dict
from ois_jax.models.depth import DepthAnythingV2
from ois_jax.models.vit import interpolate_pos_embed

torch = pytest.importorskip("torch")
F = torch.nn.functional
RTOL = 1e-4


def _hf_forward(model, x_nchw):
  """Depth (B, H, W) and the 4 normed intermediate features (B, h, w, D) of the HF model."""
  with torch.no_grad():
    depth = model(x_nchw).predicted_depth
    maps = model.backbone(x_nchw).feature_maps  # (B, 1 + h*w, D), layernorm applied
  b, _, hh, ww = x_nchw.shape
  feats = [m[:, 1:].reshape(b, hh // 14, ww // 14, -1).numpy() for m in maps]
  return depth.numpy(), feats


def _assert_close(ours, ref, what):
  ours, ref = np.asarray(ours), np.asarray(ref)
  assert ours.shape == ref.shape, (what, ours.shape, ref.shape)
  scale = np.abs(ref).max()
  assert scale > 0, f"{what}: reference is all zeros, the test would be vacuous"
  err = np.abs(ours - ref).max()
  assert err <= RTOL * scale, f"{what}: max abs error {err:.3g} > {RTOL} x {scale:.3g}"


@pytest.fixture(scope="module")
def vits(hf_reference):
  model = hf_reference("vits")
  # state_dict() of transformers 5 uses its in-memory names (attention.q_proj, ...).
  sd = {k: v.numpy() for k, v in model.state_dict().items()}
  params, variant, fmt = from_state_dict(sd)
  assert (variant, fmt) == ("vits", "hf")
  return model, params


@functools.lru_cache(maxsize=None)
def _flax_forward(variant, pos_embed_mode):
  model = DepthAnythingV2(variant, pos_embed_mode=pos_embed_mode)
  return jax.jit(lambda p, x: model.apply({"params": p}, x, return_features=True))


def _compare(hf_model, params, variant, mode, height, width, seed=0):
  x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
  ref_depth, ref_feats = _hf_forward(hf_model, x)
  depth, feats = _flax_forward(variant, mode)(params, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
  for i, (ours, ref) in enumerate(zip(feats, ref_feats)):
    _assert_close(ours, ref, f"{variant} {height}x{width} feature {i}")
  _assert_close(depth, ref_depth, f"{variant} {height}x{width} depth")


def test_hf_parity_vits_518(vits):
  hf_model, params = vits
  _compare(hf_model, params, "vits", "original", 518, 518)


def test_hf_parity_vits_non_square_hf_pos_embed(vits):
  hf_model, params = vits
  _compare(hf_model, params, "vits", "hf", 266, 392)  # 19 x 28 token grid


@pytest.mark.parametrize("grid", [(19, 28), (37, 52), (26, 37), (73, 73), (5, 10)])
def test_original_pos_embed_matches_torch_scale_factor(grid):
  gh, gw = grid
  pos = torch.randn(1, 1 + 37 * 37, 32, generator=torch.Generator().manual_seed(gh * 100 + gw))
  patch = pos[:, 1:].reshape(1, 37, 37, 32).permute(0, 3, 1, 2)
  ref = F.interpolate(patch, scale_factor=((gh + 0.1) / 37, (gw + 0.1) / 37), mode="bicubic",
                      antialias=False)
  ref = torch.cat([pos[:, :1], ref.permute(0, 2, 3, 1).reshape(1, gh * gw, 32)], 1).numpy()
  ours = np.asarray(interpolate_pos_embed(jnp.asarray(pos.numpy()), gh, gw, "original"))
  _assert_close(ours, ref, f"pos embed {grid}")
  # The two interpolations really differ, so the mode switch matters.
  hf = np.asarray(interpolate_pos_embed(jnp.asarray(pos.numpy()), gh, gw, "hf"))
  assert np.abs(hf - ref).max() > 1e-2


def test_original_pos_embed_mode_end_to_end(vits, original_pos_embed):
  hf_model, params = vits
  with original_pos_embed(hf_model):
    _compare(hf_model, params, "vits", "original", 266, 392)


@pytest.mark.slow
def test_hf_parity_vitb_518_and_non_square(hf_reference):
  hf_model = hf_reference("vitb")
  params, variant, _ = from_state_dict({k: v.numpy() for k, v in hf_model.state_dict().items()})
  assert variant == "vitb"
  _compare(hf_model, params, "vitb", "original", 518, 518)
  _compare(hf_model, params, "vitb", "hf", 196, 308)
