"""Stage 1 of the recipe in miniature: the depth training loop and its held-out score."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.errors import CheckpointError
from ois_jax.proj.miniature import depth_eval, depth_pretrain as dp


def tiny_depth_config(steps=6):
  from ois_jax.proj.miniature.configs import depth_tiny_procedural
  c = depth_tiny_procedural.get_config()
  c.total_steps = steps
  m = c.model
  m.encoder_embed_dim, m.encoder_depth, m.encoder_num_heads, m.encoder_layers = 16, 4, 2, (0, 1, 2, 3)
  m.head_features, m.head_out_channels, m.input_size = 8, (4, 8, 16, 16), 42
  c.data.procedural_num_train = 8
  c.data.procedural_size = (30, 40)
  c.data.batch_size = 2
  c.data.num_threads = 1
  c.data.prefetch_buffer = 4
  c.train.warmup_steps = 1
  c.train.learning_rate = 3e-3
  return c


def test_batches_are_deterministic_and_masked():
  c = tiny_depth_config()
  a, b = next(dp.make_depth_iterator(c)), next(dp.make_depth_iterator(c))
  assert a["image"].shape == (2, 42, 42, 3) and a["depth"].shape == a["valid"].shape == (2, 42, 42)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert 0 < a["valid"].mean() < 1                    # padding (40 x 30 -> 42 x 32) is not valid
  assert np.all(a["image"][~a["valid"]] == 0)


def test_train_depth_lowers_the_loss_and_saves_a_loadable_dav2_checkpoint(tmp_path):
  from ois_jax.convert import load_depth_weights
  from ois_jax.models.depth import load_depth_model
  c = tiny_depth_config(steps=16)
  c.data.procedural_num_train = 2    # the same two scenes in every batch: the loss must fall
  c.data.augment = False
  workdir = tmp_path / "depth"
  summary = dp.train_depth(c, str(workdir), quiet=True, log=lambda *a: None)
  losses = summary["losses"]
  assert len(losses) == 16 and not summary["reused"]
  assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
  model, config, params = load_depth_model(summary["checkpoint"])
  assert config.variant == "custom" and config.input_size == 42
  assert config.sizes.embed_dim == 16 and config.sizes.intermediate_layers == (0, 1, 2, 3)
  depth = model.forward(params, jnp.zeros((1, 42, 42, 3)))
  assert depth.shape == (1, 42, 42)
  # The held-out check the quickstart prints, and its figure (image | true | predicted depth).
  assert summary["heldout_ssi"] == pytest.approx(depth_eval.heldout_depth_error(model, params, c), rel=1e-5)
  from PIL import Image
  with Image.open(workdir / dp.FIGURE_FILE) as figure:
    assert figure.size[0] > 300 and figure.size[1] > 600
  weights, description = load_depth_weights(summary["checkpoint"])  # the path OIS training takes
  assert "custom" in description and set(weights) == {"pretrained", "depth_head"}
  # The same settings again: reused, not retrained.
  again = dp.train_depth(c, str(workdir), quiet=True, log=lambda *a: None)
  assert again["reused"] and again["losses"] == summary["losses"]
  c.train.learning_rate = 1e-2
  with pytest.raises(CheckpointError, match="other settings"):
    dp.train_depth(c, str(workdir), quiet=True, log=lambda *a: None)
  assert json.loads((workdir / dp.SUMMARY_FILE).read_text())["settings"]["train"]["learning_rate"] == 3e-3


class _ConstantDepth:
  """Stand-in depth model: the same map for every image."""
  def forward(self, params, images):
    return jnp.full(images.shape[:3], 0.3, jnp.float32)


class _TrueDepth:
  """Stand-in depth model that knows the held-out scenes' depth (2.5 x + 1)."""
  def __init__(self, config):
    self.depth = depth_eval.heldout_batch(config)["depth"]

  def forward(self, params, images):
    return jnp.asarray(2.5 * self.depth[: images.shape[0]] + 1.0)


def test_heldout_error_scores_a_constant_map_1_and_the_true_depth_0():
  c = tiny_depth_config()
  batch = depth_eval.heldout_batch(c, 4)
  assert batch["image"].shape == (4, 42, 42, 3) and batch["rgb"].dtype == np.uint8
  assert np.all(batch["image"][~batch["valid"]] == 0) and batch["depth"][batch["valid"]].min() >= 0  # the sky: 0
  assert depth_eval.heldout_depth_error(_ConstantDepth(), None, c) == pytest.approx(1.0, abs=1e-6)
  assert depth_eval.heldout_depth_error(_TrueDepth(c), None, c) < 1e-5
