"""Train state (a plain dict), its sharded creation, and the jitted train step.

The state is `{'step': int32, 'params': pytree, 'opt_state': pytree}`. Parameters are created
already sharded: `jax.eval_shape(init)` -> shardings from the logical axis rules ->
`jax.jit(init, out_shardings=...)`, so no device ever holds the full unsharded model.
"""

import functools

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from ois_jax.evaluation.metrics import iou
from ois_jax.models.model_fns import ModelFns, ois_fns  # noqa: F401  (training's API names them)
from ois_jax.training import iterative, loss as loss_lib, optim, sharding


def create_train_state(model, config, fns, mesh, rng, depth_params=None):
  """Returns (state, state_shardings, tx, trainable_mask); params materialise already sharded.

  depth_params: DepthAnythingV2 weights ({'pretrained', 'depth_head'}, e.g. from
  `convert.load_depth_weights`) copied over the random init of the encoder, the depth head and
  the segmentation head (`fns.init_from_depth`), or None for a fully random start.
  """
  abstract_params = jax.eval_shape(functools.partial(fns.init_params, model), rng)
  trainable_mask = fns.trainable_mask(abstract_params)
  tx = optim.make_optimizer(config, trainable_mask)

  def init(rng, depth_params):
    params = fns.init_params(model, rng)
    if depth_params is not None:
      params = fns.init_from_depth(params, depth_params)
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}

  abstract_state = jax.eval_shape(init, rng, depth_params)
  shardings = sharding.state_shardings(abstract_state, config, mesh)
  state = jax.jit(init, out_shardings=shardings)(rng, depth_params)
  return state, shardings, tx, trainable_mask


def make_train_step(model, config, fns, tx, trainable_mask):
  """`train_step(state, batch, rng) -> (state, metrics)`, a pure function (not yet jitted).

  A batch with 'frozen' (the frozen encoder's outputs, `frozen_cache.FrozenOutputCache`) in
  place of 'image' and 'depth' skips the encoder and the depth head: same loss and gradients.
  """
  max_rounds = int(config.data.max_iterative_rounds)
  num_positive = int(config.model.num_positive_slots)
  threshold = float(config.eval.threshold)
  external_depth = config.model.depth_source == "external"
  schedule = optim.learning_rate_schedule(config)

  def train_step(state, batch, rng):
    rng = jax.random.fold_in(rng, state["step"])
    rounds_rng, clicks_rng = jax.random.split(rng)
    num_rounds = jax.random.randint(rounds_rng, (), 0, max_rounds + 1)  # per batch, as SegNext
    gt = batch["gt"].astype(jnp.int32)
    depth = batch.get("depth") if external_depth else None

    def loss_fn(params):
      params = optim.freeze(params, trainable_mask)
      if "frozen" in batch:
        image_state = fns.image_state(model, params, batch["frozen"])
      else:
        image_state = fns.encode_image(model, params, batch["image"], depth)
      # The no-gradient rounds see constants only, so no tangents enter the while_loop.
      params_sg = jax.lax.stop_gradient(params)
      image_state_sg = jax.lax.stop_gradient(image_state)

      def predict(coords, valid, prev, has_prev):
        return fns.decode(model, params_sg, image_state_sg, fns.make_clicks(coords, valid),
                          prev, has_prev)

      coords, valid, prev, has_prev = iterative.run_iterative_rounds(
          predict, gt, batch["click_coords"].astype(jnp.float32), batch["click_valid"].astype(bool),
          clicks_rng, num_rounds, num_positive=num_positive, threshold=threshold)
      logits = fns.decode(model, params, image_state, fns.make_clicks(coords, valid), prev, has_prev)
      logits = logits.astype(jnp.float32)
      loss = loss_lib.normalized_focal_loss(logits, gt)
      return loss, {"iou": jnp.mean(iou(gt, logits > 0)), "num_rounds": num_rounds,
                    "num_clicks": jnp.mean(jnp.sum(valid, axis=1).astype(jnp.float32))}

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    grad_norm = optax.tree.norm(grads)
    metrics = dict(aux, loss=loss, grad_norm=grad_norm, learning_rate=schedule(state["step"]),
                   nonfinite=nonfinite_code(loss, grads, params))
    return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

  return train_step


# Bits of the `nonfinite` metric: what of a step was NaN or infinite (0: all finite).
NONFINITE_LOSS, NONFINITE_GRADS, NONFINITE_PARAMS = 1, 2, 4


def nonfinite_code(loss, grads, params) -> jax.Array:
  """An int32 scalar of NONFINITE_* bits: the host reads one number per step, fetched with the
  loss, to stop before a NaN or inf reaches a checkpoint or an export."""
  return (jnp.where(jnp.isfinite(loss), 0, NONFINITE_LOSS)
          + jnp.where(_all_finite(grads), 0, NONFINITE_GRADS)
          + jnp.where(_all_finite(params), 0, NONFINITE_PARAMS)).astype(jnp.int32)


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def describe_nonfinite(code: int) -> str:
  """'the loss and the gradients' for the bits of `code`."""
  parts = [name for bit, name in ((NONFINITE_LOSS, "the loss"), (NONFINITE_GRADS, "the gradients"),
                                  (NONFINITE_PARAMS, "the updated weights")) if int(code) & bit]
  if len(parts) > 1:
    return ", ".join(parts[:-1]) + " and " + parts[-1]
  return parts[0] if parts else "nothing"


def jit_train_step(train_step, state_shardings, mesh):
  """jit with the state's shardings in and out; the old state's buffers are donated."""
  replicated = NamedSharding(mesh, P())
  return jax.jit(train_step, out_shardings=(state_shardings, replicated), donate_argnums=(0,))
