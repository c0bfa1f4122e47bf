"""train.cache_frozen_outputs: the same loss and gradients with the frozen encoder's outputs
reused, hits from the second epoch on, and a clear refusal with augmentation."""

import functools

import jax
import numpy as np
import optax
import pytest

from ois_jax.errors import ConfigError
from ois_jax.training import frozen_cache, sharding, trainer, train_step as ts


def _grads_as_state():
  """A 'optimizer' whose state after a step is that step's gradients (and updates are zero)."""
  return optax.GradientTransformation(
      init=lambda params: jax.tree.map(np.zeros_like, params),
      update=lambda grads, state, params=None: (jax.tree.map(lambda g: 0 * g, grads), grads))


def test_cached_step_has_the_same_loss_and_gradients(standin):
  from ois_jax.configs import ois_tiny
  cfg = ois_tiny.get_config()
  cfg.model.input_size, cfg.data.batch_size = 28, 2
  cfg.model.fine_prompt_levels = 1              # the frozen levels also reach a skip level's prompts
  cfg.model.num_blocks = 1
  cfg.data.max_iterative_rounds = 0             # rounds use the same image state (checked below)
  cfg.data.augment = False
  cfg.train.cache_frozen_outputs = True
  fns = ts.ois_fns()
  model = fns.build_model(cfg.model)
  shapes = jax.eval_shape(functools.partial(fns.init_params, model), jax.random.key(0))
  rng = np.random.default_rng(0)  # random values without compiling the init
  params = jax.tree.map(lambda x: rng.normal(0, 0.2, x.shape).astype(np.float32), shapes)
  mask = fns.trainable_mask(params)
  tx = _grads_as_state()
  host = next(standin.ToyData(cfg, seed=1))
  messages = []
  cache = frozen_cache.FrozenOutputCache(model, cfg, fns, log=messages.append)
  cached = cache(host, params)
  assert "image" not in cached and set(cached["frozen"]) == {"levels", "depth"}
  assert cache.stats == {"frozen_hits": 0, "frozen_misses": 2} and "KiB" in messages[0]
  again = cache(host, params)
  assert cache.stats == {"frozen_hits": 2, "frozen_misses": 2}
  for a, b in zip(jax.tree.leaves(cached), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)

  # The image state the decoder sees is the one encode_image gives.
  direct = jax.jit(lambda p, x: fns.encode_image(model, p, x))(params, host["image"])
  from_cache = jax.jit(lambda p, f: fns.image_state(model, p, f))(params, cached["frozen"])
  for key in direct:
    np.testing.assert_allclose(from_cache[key], direct[key], rtol=1e-5, atol=1e-6)

  step = jax.jit(ts.make_train_step(model, cfg, fns, tx, mask))
  state = {"step": np.int32(0), "params": params, "opt_state": tx.init(params)}
  out = {}
  for name, batch in (("image", host), ("frozen", cached)):
    new_state, metrics = step(state, batch, jax.random.key(1))
    out[name] = (float(metrics["loss"]), new_state["opt_state"])
  assert out["image"][0] == pytest.approx(out["frozen"][0], rel=1e-6)
  grads_image, grads_frozen = out["image"][1], out["frozen"][1]
  for g in jax.tree.leaves({k: grads_frozen[k] for k in ("encoder", "depth_head")}):
    assert not np.any(np.asarray(g))             # nothing flows into the frozen parts
  scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(grads_image))
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(grads_image)[0],
                          jax.tree.leaves(grads_frozen)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * scale, err_msg=jax.tree_util.keystr(path))
  assert sum(float(np.abs(g).sum()) for g in jax.tree.leaves(grads_frozen["seg_head"])) > 0


def _config(standin, cache):
  cfg = standin.config(size=32, batch=4)
  cfg.data.dataset = "procedural"
  cfg.data.procedural_num_train = 5       # 24 samples of 5 scenes: hits from the second batch on
  cfg.data.procedural_size = (48, 64)
  cfg.data.num_threads = 1
  cfg.data.augment = False
  cfg.total_steps = cfg.checkpoint_every = 6
  cfg.train.log_every = 1
  cfg.train.cache_frozen_outputs = cache
  return cfg


def _train(standin, cfg, workdir):
  from ois_jax.data_pipelines import training as data_training
  return trainer.train(cfg, str(workdir), fns=standin.FNS,
                       make_data=lambda c: data_training.make_train_iterator(c, None, int(c.seed)),
                       make_validation=lambda *a: None, quiet=True, log=lambda *a: None)


def test_training_with_the_cache_matches(standin, tmp_path):
  plain = _train(standin, _config(standin, False), tmp_path / "plain")
  cached = _train(standin, _config(standin, True), tmp_path / "cached")
  stats = cached["data_stats"]
  assert stats["frozen_misses"] <= 5 and stats["frozen_hits"] == 24 - stats["frozen_misses"]
  np.testing.assert_allclose([h["loss"] for h in cached["history"]],
                             [h["loss"] for h in plain["history"]], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(plain["state"]["params"]), jax.tree.leaves(cached["state"]["params"])):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_refused_with_augmentation(standin, tmp_path):
  cfg = _config(standin, True)
  cfg.data.augment = True
  with pytest.raises(ConfigError, match="data.augment=False") as e:
    _train(standin, cfg, tmp_path / "run")
  assert isinstance(e.value, ValueError)
  checkpoints = tmp_path / "run" / "checkpoints"
  assert not checkpoints.exists() or not any(checkpoints.iterdir())   # refused before any step


def test_shard_batch_takes_the_nested_frozen_outputs(standin):
  cfg = standin.config(size=32, batch=4)
  mesh = sharding.make_mesh(cfg)
  batch = sharding.shard_batch({"gt": np.zeros((4, 32, 32), np.int8),
                                "frozen": {"levels": (np.ones((4, 2, 2, 8), np.float32),) * 2,
                                           "depth": np.ones((4, 32, 32), np.float32)}}, cfg, mesh)
  assert isinstance(batch["frozen"]["levels"], tuple) and batch["frozen"]["depth"].shape == (4, 32, 32)
