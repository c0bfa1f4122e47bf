"""Optimiser from the config: Adam(W) with step decays, frozen subtrees without state."""

import jax
import optax


def learning_rate_schedule(config) -> optax.Schedule:
  """Constant `train.learning_rate`, multiplied by 0.1 at each fraction in `train.lr_decay_steps`."""
  total = int(config.total_steps)
  boundaries = {}
  for fraction in config.train.lr_decay_steps:
    step = max(1, int(round(float(fraction) * total)))
    boundaries[step] = boundaries.get(step, 1.0) * 0.1
  return optax.piecewise_constant_schedule(float(config.train.learning_rate), boundaries)


def make_optimizer(config, trainable_mask) -> optax.GradientTransformation:
  """Adam on the trainable leaves; frozen leaves (encoder, depth head) get zero updates.

  `optax.multi_transform` masks each inner transformation, so Adam's moments exist only for the
  trainable leaves: the frozen encoder carries no optimiser state at all.
  """
  schedule = learning_rate_schedule(config)
  if config.train.weight_decay:
    inner = optax.adamw(schedule, weight_decay=float(config.train.weight_decay))
  else:
    inner = optax.adam(schedule)
  labels = jax.tree.map(lambda trainable: "train" if trainable else "frozen", trainable_mask)
  return optax.multi_transform({"train": inner, "frozen": optax.set_to_zero()}, labels)


def freeze(params, trainable_mask):
  """Stops gradients at the frozen leaves, so XLA drops the encoder's backward pass."""
  return jax.tree.map(lambda p, t: p if t else jax.lax.stop_gradient(p), params, trainable_mask)
