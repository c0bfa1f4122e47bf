"""Stage 1 of the recipe: the scale-and-shift-invariant loss and the depth training loop."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from ois_jax.errors import CheckpointError
from ois_jax.training import depth_pretrain as dp


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
  ours = float(dp.ssi_loss(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(valid), gradient_weight))
  ref = _oracle_loss(pred, target, valid, gradient_weight)
  np.testing.assert_allclose(ours, ref, rtol=2e-5)


def test_masked_median_even_and_odd_counts():
  x = jnp.asarray([[5.0, 1.0, 9.0, 3.0, 100.0], [4.0, 2.0, 8.0, 6.0, -50.0]])
  valid = jnp.asarray([[True, True, True, False, False], [True, True, True, True, False]])
  np.testing.assert_allclose(dp.masked_median(x, valid), [5.0, 5.0])


def test_ssi_loss_is_scale_and_shift_invariant():
  pred, target, valid = _maps(1)
  loss = lambda p, t: float(dp.ssi_loss(jnp.asarray(p), jnp.asarray(t), jnp.asarray(valid), 0.5))
  base = loss(pred, target)
  assert base > 0.1
  np.testing.assert_allclose(loss(3.7 * pred + 2.0, target), base, rtol=1e-5)
  np.testing.assert_allclose(loss(pred, 0.2 * target - 5.0), base, rtol=1e-5)
  assert loss(2.0 * target + 1.0, target) < 1e-5          # right up to scale and shift: zero
  # Invalid pixels do not count: changing them changes nothing.
  changed = np.where(valid, pred, 1e3).astype(np.float32)
  np.testing.assert_allclose(loss(changed, target), base, rtol=1e-6)


def tiny_depth_config(steps=6):
  from ois_jax.configs import depth_tiny_procedural
  c = depth_tiny_procedural.get_config()
  c.total_steps = steps
  m = c.model
  m.embed_dim, m.depth, m.num_heads, m.intermediate_layers = 16, 4, 2, (0, 1, 2, 3)
  m.features, m.out_channels, m.input_size = 8, (4, 8, 16, 16), 42
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
  assert summary["heldout_ssi"] == pytest.approx(dp.heldout_depth_error(model, params, c), rel=1e-5)
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
    self.depth = dp.heldout_batch(config)["depth"]

  def forward(self, params, images):
    return jnp.asarray(2.5 * self.depth[: images.shape[0]] + 1.0)


def test_heldout_error_scores_a_constant_map_1_and_the_true_depth_0():
  c = tiny_depth_config()
  batch = dp.heldout_batch(c, 4)
  assert batch["image"].shape == (4, 42, 42, 3) and batch["rgb"].dtype == np.uint8
  assert np.all(batch["image"][~batch["valid"]] == 0) and batch["depth"][batch["valid"]].min() >= 0  # the sky: 0
  assert dp.heldout_depth_error(_ConstantDepth(), None, c) == pytest.approx(1.0, abs=1e-6)
  assert dp.heldout_depth_error(_TrueDepth(c), None, c) < 1e-5
