"""Train step: loss goes down, frozen params stay put and carry no optimiser state, and the
iterative-training click lands where RITM / SegNext put it."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from ois_jax.training import iterative, optim, sharding, train_step as ts


def _fixed_batch(standin, cfg):
  return next(standin.ToyData(cfg, seed=3))


def _run(standin, cfg, steps):
  mesh = sharding.make_mesh(cfg)
  model = standin.FNS.build_model(cfg.model)
  state, shardings, tx, mask = ts.create_train_state(model, cfg, standin.FNS, mesh, jax.random.key(0))
  initial = jax.tree.map(np.asarray, state["params"])
  step = ts.jit_train_step(ts.make_train_step(model, cfg, standin.FNS, tx, mask), shardings, mesh)
  batch = sharding.shard_batch(_fixed_batch(standin, cfg), cfg, mesh)
  losses = []
  for _ in range(steps):
    state, metrics = step(state, batch, jax.random.key(1))
    losses.append(float(metrics["loss"]))
  return initial, state, losses


def _moment_size(opt_state):
  leaves = jax.tree_util.tree_flatten_with_path(opt_state)[0]
  return sum(x.size for p, x in leaves if ".mu" in jax.tree_util.keystr(p) or ".nu" in jax.tree_util.keystr(p))


def test_loss_goes_down_and_frozen_params_stay(standin, tiny_standin_config):
  cfg = tiny_standin_config
  cfg.data.max_iterative_rounds = 0   # a fixed objective on the fixed batch
  cfg.train.learning_rate = 3e-3
  initial, state, losses = _run(standin, cfg, 25)
  assert losses[-1] < 0.9 * losses[0] and losses[-1] < min(losses[:5]), losses
  for key in ("encoder", "depth_head"):
    for a, b in zip(jax.tree.leaves(initial[key]), jax.tree.leaves(state["params"][key])):
      np.testing.assert_array_equal(a, np.asarray(b))
  moved = [not np.array_equal(a, np.asarray(b)) for a, b in
           zip(jax.tree.leaves(initial["seg_head"]), jax.tree.leaves(state["params"]["seg_head"]))]
  assert all(moved)
  # Adam moments exist only for the trainable leaves: 2 x their element count, nothing else big.
  trainable = sum(x.size for x in jax.tree.leaves(state["params"]["seg_head"]))
  assert _moment_size(state["opt_state"]) == 2 * trainable
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state["opt_state"])[0]]
  assert not any("encoder" in p or "depth_head" in p for p in paths)


def test_real_model_optimizer_has_no_state_for_frozen_parts():
  from ois_jax.configs import ois_tiny
  from ois_jax.models import ois
  cfg = ois_tiny.get_config()
  model = ois.build_model(cfg.model)
  params = jax.eval_shape(functools.partial(ois.init_params, model), jax.random.key(0))
  mask = ois.trainable_mask(params)
  opt_state = jax.eval_shape(optim.make_optimizer(cfg, mask).init, params)
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(opt_state)[0]]
  assert any("seg_head" in p for p in paths)
  assert not any("'encoder'" in p or "'depth_head'" in p for p in paths)
  trainable = sum(x.size for x, t in zip(jax.tree.leaves(params), jax.tree.leaves(mask)) if t)
  assert _moment_size(opt_state) == 2 * trainable


def test_learning_rate_steps_down(tiny_standin_config):
  cfg = tiny_standin_config
  cfg.total_steps, cfg.train.learning_rate, cfg.train.lr_decay_steps = 100, 1e-3, (0.5, 0.9)
  schedule = optim.learning_rate_schedule(cfg)
  np.testing.assert_allclose([schedule(0), schedule(49), schedule(50), schedule(89), schedule(90)],
                             [1e-3, 1e-3, 1e-4, 1e-4, 1e-5], rtol=1e-5)


def _oracle_region(pred, gt):
  fn = (gt == 1) & ~pred
  fp = (gt == 0) & pred
  fn_dt = ndimage.distance_transform_edt(np.pad(fn, 1))[1:-1, 1:-1]
  fp_dt = ndimage.distance_transform_edt(np.pad(fp, 1))[1:-1, 1:-1]
  positive = fn_dt.max() > fp_dt.max()
  dt = fn_dt if positive else fp_dt
  return positive, dt > max(fn_dt.max(), fp_dt.max()) / 2


def test_iterative_click_in_larger_error_region():
  h, w, n, num_pos = 24, 30, 6, 3
  gt = np.zeros((2, h, w), np.int8)
  gt[:, 3:15, 4:20] = 1
  gt[:, 20:, :] = -1
  pred = np.zeros((2, h, w), bool)
  pred[0, 3:15, 4:9] = True          # sample 0: large false negative -> positive click
  pred[1] = gt[1] == 1
  pred[1, 15:19, 2:28] = True        # sample 1: only a false-positive band -> negative click
  coords = np.zeros((2, n, 2), np.float32)
  valid = np.zeros((2, n), bool)
  valid[:, 0] = True                 # slot 0 taken; next positive slot is 1, negative slot 3
  fn = jax.jit(functools.partial(iterative.next_training_clicks, num_positive=num_pos))
  seen = set()
  for seed in range(20):
    new_coords, new_valid = fn(jnp.asarray(pred), jnp.asarray(gt), coords, valid, jax.random.key(seed))
    new_coords, new_valid = np.asarray(new_coords), np.asarray(new_valid)
    for b, slot in ((0, 1), (1, 3)):
      positive, region = _oracle_region(pred[b], gt[b])
      assert positive == (b == 0)
      assert new_valid[b].sum() == 2 and new_valid[b, slot]
      y, x = new_coords[b, slot].astype(int)
      assert region[y, x]
      seen.add((b, y, x))
  assert len(seen) > 4  # random among the region, not always the same pixel


def test_no_click_without_error_or_free_slot():
  gt = np.zeros((2, 10, 10), np.int8)
  gt[:, 2:6, 2:6] = 1
  pred = gt == 1
  pred[1] = False                          # sample 1 has an error but no free positive slot
  valid = np.zeros((2, 4), bool)
  valid[1, :2] = True
  coords = np.zeros((2, 4, 2), np.float32)
  fn = jax.jit(functools.partial(iterative.next_training_clicks, num_positive=2))
  out_coords, out_valid = fn(jnp.asarray(pred), jnp.asarray(gt), coords, valid, jax.random.key(0))
  np.testing.assert_array_equal(np.asarray(out_valid), valid)
  np.testing.assert_array_equal(np.asarray(out_coords), coords)
