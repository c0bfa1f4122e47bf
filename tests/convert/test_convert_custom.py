"""Custom-size DepthAnythingV2 (the quickstart's stage-1 model): `ois-jax convert` round trips and
parity with transformers' DepthAnything built at the same sizes.

The tensors of a custom-size model do not tell its number of attention heads nor its intermediate
layers: the export writes them to a JSON beside the weights, and reading the weights without it is
a one-line error that names the missing file.
"""

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax import checkpoint
from ois_jax.cli import main as cli_main
from ois_jax.convert import expected_original_shapes, sizes_path
from ois_jax.models.depth import DepthAnythingV2, DepthConfig, DepthSize, load_depth_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# 5 blocks, 4 heads, layers (0, 2, 3, 4): neither the head count nor the layers follow from shapes.
SIZE = DepthSize(embed_dim=32, depth=5, num_heads=4, intermediate_layers=(0, 2, 3, 4), features=16,
                 out_channels=(8, 16, 32, 32))
CONFIG = DepthConfig("custom", input_size=112, size=SIZE)


@pytest.fixture(scope="module")
def custom_ckpt(tmp_path_factory):
  params = DepthAnythingV2.from_config(CONFIG).random_params(3)
  path = str(tmp_path_factory.mktemp("custom") / "ckpt")
  checkpoint.save_checkpoint(path, params, CONFIG)
  return path


def _equal_trees(a, b):
  import jax
  flat_a, flat_b = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_flatten_with_path(b)[0]
  assert [k for k, _ in flat_a] == [k for k, _ in flat_b]
  for (key, x), (_, y) in zip(flat_a, flat_b):
    assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), key


def test_custom_pth_round_trip_is_bit_exact(custom_ckpt, tmp_path, capsys):
  pth = str(tmp_path / "dav2_tiny.pth")
  assert cli_main(["convert", custom_ckpt, pth]) == 0
  assert "dav2_tiny.json" in capsys.readouterr().out
  state_dict = torch.load(pth, weights_only=True)
  assert set(state_dict) == set(expected_original_shapes(SIZE))  # the original DAv2 key layout
  assert "pretrained.blocks.4.attn.qkv.weight" in state_dict
  assert state_dict["depth_head.scratch.layer1_rn.weight"].shape == (16, 8, 3, 3)
  assert json.loads(open(sizes_path(pth)).read())["size"]["num_heads"] == 4

  back = str(tmp_path / "back")
  assert cli_main(["convert", pth, back]) == 0
  params, config = checkpoint.load_checkpoint(back)
  _equal_trees(checkpoint.load_checkpoint(custom_ckpt)[0], params)
  assert DepthConfig.from_dict(config) == CONFIG           # heads, layers, input size came back

  pth2 = str(tmp_path / "again.pth")
  assert cli_main(["convert", back, pth2]) == 0
  again = torch.load(pth2, weights_only=True)
  assert sorted(again) == sorted(state_dict)
  for key in state_dict:
    assert state_dict[key].dtype == again[key].dtype and torch.equal(state_dict[key], again[key]), key


def test_custom_pth_without_its_sizes_is_a_clear_error(custom_ckpt, tmp_path, capsys):
  pth = str(tmp_path / "w.pth")
  assert cli_main(["convert", custom_ckpt, pth]) == 0
  moved = str(tmp_path / "elsewhere.json")
  shutil.move(sizes_path(pth), moved)
  capsys.readouterr()
  assert cli_main(["convert", pth, str(tmp_path / "ckpt")]) == 1
  errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ois-jax convert: error:")]
  assert len(errors) == 1                                  # one line, no traceback
  assert "embed dim 32, 5 blocks" in errors[0] and "w.json" in errors[0] and "--sizes" in errors[0]
  assert not os.path.exists(tmp_path / "ckpt")
  # --sizes names the JSON explicitly.
  assert cli_main(["convert", pth, str(tmp_path / "ckpt"), "--sizes", moved]) == 0
  assert load_depth_model(str(tmp_path / "ckpt"))[1] == CONFIG


def test_sizes_that_do_not_fit_the_weights(custom_ckpt, tmp_path, capsys):
  pth = str(tmp_path / "w.pth")
  assert cli_main(["convert", custom_ckpt, pth]) == 0
  record = json.loads(open(sizes_path(pth)).read())
  record["size"]["depth"] = 6
  record["size"]["intermediate_layers"] = [1, 2, 3, 5]
  with open(sizes_path(pth), "w") as f:
    json.dump(record, f)
  capsys.readouterr()
  assert cli_main(["convert", pth, str(tmp_path / "ckpt")]) == 1
  err = capsys.readouterr().err
  assert "embed dim 32, 5 blocks" in err and "6 blocks" in err
  record["size"]["out_channels"] = [8, 16, 32]            # not a buildable model
  with open(sizes_path(pth), "w") as f:
    json.dump(record, f)
  assert cli_main(["convert", pth, str(tmp_path / "ckpt")]) == 1
  assert "out_channels must be 4" in capsys.readouterr().err


def test_custom_size_matches_transformers(randomize, tmp_path):
  """Same sizes in transformers' DepthAnything: its weights through the converter give its depth."""
  config = transformers.DepthAnythingConfig(
      backbone_config=transformers.Dinov2Config(
          hidden_size=SIZE.embed_dim, num_hidden_layers=SIZE.depth, num_attention_heads=SIZE.num_heads,
          image_size=518, patch_size=14, out_indices=[i + 1 for i in SIZE.intermediate_layers],
          apply_layernorm=True, reshape_hidden_states=False),
      reassemble_hidden_size=SIZE.embed_dim, neck_hidden_sizes=list(SIZE.out_channels),
      fusion_hidden_size=SIZE.features, depth_estimation_type="relative")
  reference = randomize(transformers.DepthAnythingForDepthEstimation(config).eval(), 5)
  reference.save_pretrained(tmp_path / "hub")
  sizes = str(tmp_path / "sizes.json")
  with open(sizes, "w") as f:
    json.dump(DepthConfig("custom", "hf", 112, SIZE).to_dict(), f)
  ckpt = str(tmp_path / "ckpt")
  assert cli_main(["convert", str(tmp_path / "hub" / "model.safetensors"), ckpt, "--sizes", sizes]) == 0
  model, loaded, params = load_depth_model(ckpt)
  assert loaded.pos_embed_mode == "hf" and loaded.sizes == SIZE
  x = np.random.default_rng(0).standard_normal((1, 56, 84, 3)).astype(np.float32)
  with torch.no_grad():
    ref = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).predicted_depth.numpy()
  ours = np.asarray(model.forward(params, jnp.asarray(x)))
  assert ours.shape == ref.shape and np.abs(ref).max() > 0
  assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
