"""File-level conversion through the real CLI: original .pth end to end, round trips, HF export.

The original-layout state dict is produced from the HF reference by a hand-written mapping
(conftest.to_original_layout), saved with torch.save, converted with `ois-jax convert`, and the
resulting checkpoint's `infer_image` is compared with DAv2's infer_image pipeline run in torch.
"""

import json
import os

import numpy as np
import pytest

from ois_jax import checkpoint
from ois_jax.cli import main as cli_main
from ois_jax.models.depth import load_depth_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.numpy import load_file  # noqa: E402


@pytest.fixture(scope="module")
def vits_model(hf_reference):
  return hf_reference("vits")


@pytest.fixture(scope="module")
def original_pth(vits_model, to_original_layout, tmp_path_factory):
  path = tmp_path_factory.mktemp("pth") / "depth_anything_v2_vits.pth"
  torch.save(to_original_layout(vits_model), path)
  return str(path)


@pytest.fixture(scope="module")
def converted_dir(original_pth, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("ckpt") / "dav2_vits")
  assert cli_main(["convert", original_pth, out]) == 0
  return out


def test_original_pth_end_to_end(vits_model, converted_dir, original_pos_embed, reference_infer):
  model, config, params = load_depth_model(converted_dir)
  assert (config.variant, config.pos_embed_mode) == ("vits", "original")
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (150, 101, 3), dtype=np.uint8)  # non-square, odd width
  ours = model.infer_image(params, image, input_size=196)
  with original_pos_embed(vits_model):
    ref = reference_infer(vits_model, image, 196)
  assert ours.dtype == np.float32 and ours.shape == (150, 101)
  scale = np.abs(ref).max()
  assert scale > 0
  assert np.abs(ours - ref).max() <= 1e-4 * scale


def test_checkpoint_dir_is_self_describing(converted_dir):
  with open(os.path.join(converted_dir, checkpoint.METADATA_FILE)) as f:
    meta = json.load(f)
  assert meta["config"]["model"] == "depth_anything_v2"
  assert meta["config"]["variant"] == "vits"
  params, config = checkpoint.load_checkpoint(converted_dir)
  assert config["variant"] == "vits"
  assert params["pretrained"]["pos_embed"].shape == (1, 1370, 384)


def test_pth_round_trip_is_bit_exact(original_pth, converted_dir, tmp_path):
  out = str(tmp_path / "back.pth")
  assert cli_main(["convert", converted_dir, out]) == 0
  src = torch.load(original_pth, weights_only=True)
  back = torch.load(out, weights_only=True)
  assert sorted(src) == sorted(back)
  for key in src:
    assert src[key].dtype == back[key].dtype and src[key].shape == back[key].shape, key
    assert torch.equal(src[key], back[key]), key


def test_safetensors_round_trip_and_hf_loads_export(vits_model, tmp_path):
  hub_dir = tmp_path / "hub"
  vits_model.save_pretrained(hub_dir)  # the Hub layout: attention.attention.query, ...
  src = str(hub_dir / "model.safetensors")
  ckpt = str(tmp_path / "ckpt")
  assert cli_main(["convert", src, ckpt, "--variant", "vits"]) == 0
  out_dir = tmp_path / "export"
  out = str(out_dir / "model.safetensors")
  assert cli_main(["convert", ckpt, out]) == 0
  a, b = load_file(src), load_file(out)
  assert sorted(a) == sorted(b)
  for key in a:
    assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
    assert np.array_equal(a[key], b[key]), key
  # config.json is written beside model.safetensors, so transformers loads the export directly.
  reloaded = transformers.DepthAnythingForDepthEstimation.from_pretrained(str(out_dir)).eval()
  x = torch.randn(1, 3, 70, 98, generator=torch.Generator().manual_seed(1))
  with torch.no_grad():
    assert torch.equal(reloaded(x).predicted_depth, vits_model(x).predicted_depth)


def test_cross_layout_export(converted_dir, original_pth, tmp_path):
  """.pth -> Flax -> HF safetensors -> Flax -> .pth gives the original tensors back."""
  st = str(tmp_path / "w.safetensors")
  assert cli_main(["convert", converted_dir, st]) == 0
  assert any(k.startswith("neck.fusion_stage.layers.") for k in load_file(st))
  ckpt2, pth2 = str(tmp_path / "ckpt2"), str(tmp_path / "w.pth")
  assert cli_main(["convert", st, ckpt2]) == 0
  assert cli_main(["convert", ckpt2, pth2]) == 0
  src, back = torch.load(original_pth, weights_only=True), torch.load(pth2, weights_only=True)
  assert sorted(src) == sorted(back) and all(torch.equal(src[k], back[k]) for k in src)
