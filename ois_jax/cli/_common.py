"""What several commands share: choosing the model (config, checkpoint or bundled model) and config
overrides (output paths are checked and written by ois_jax.outputs)."""

import argparse

from ois_jax.errors import ConfigError


def add_model_arguments(parser: argparse.ArgumentParser, random_ok: bool = True) -> None:
  """--config / --checkpoint / --model; config overrides are `--config.KEY=VALUE` (repeatable,
  taken out of the command line by `ois_jax.config.parse_with_overrides`)."""
  parser.add_argument("--config", help="config file, `file.py:arg` or installed config name"
                      + (" (random weights from --seed when no weights are given)" if random_ok else "")
                      + "; --config.KEY=VALUE overrides one key (repeatable)")
  parser.add_argument("--checkpoint", help="OIS weights: an export (WORKDIR/best, WORKDIR/final), a "
                      "training workdir (its best step, else its latest) or one step WORKDIR/checkpoints/N")
  parser.add_argument("--model", help="a model bundled with ois-jax, e.g. ois-tiny-procedural")


# --- one check per kind of argument: each raises ConfigError (a ValueError), before any work ---
def check_probability(value, name: str) -> None:
  """ConfigError unless `value` is None or a number in [0, 1] (NaN is refused too)."""
  try:
    ok = value is None or 0.0 <= float(value) <= 1.0
  except (TypeError, ValueError):
    ok = False
  if not ok:
    raise ConfigError(f"{name} must be in [0, 1], got {value}")


def check_at_least(value, minimum: int, name: str, below: str | None = None) -> None:
  """ConfigError unless `value` is None or an integer >= `minimum` (a size, a count). `below`
  names what the minimum is ("the 14-pixel patch size") for the message."""
  if value is None:
    return
  if isinstance(value, bool) or not isinstance(value, int):
    raise ConfigError(f"{name} must be an integer, got {value!r}")
  if value < minimum:
    raise ConfigError(f"{name} {value} is below {below}" if below
                      else f"{name} must be >= {minimum}, got {value}")


def check_seed_source(args) -> None:
  """--seed picks random weights: refused with --checkpoint or --model, whose weights it would
  not change (the parser's default must be None to tell)."""
  if getattr(args, "seed", None) is not None and (args.checkpoint or args.model):
    raise ConfigError(f"--seed chooses random weights; it means nothing with "
                      f"{'--checkpoint' if args.checkpoint else '--model'}")


def check_max_clicks(max_clicks: int, model_config, name: str = "--max-clicks") -> None:
  """ConfigError when a click loop of `max_clicks` rounds could place more clicks of one sign than
  the model has slots for (ois_jax.models.prompts.click_capacity)."""
  from ois_jax.models import prompts
  pos, neg = int(model_config.num_positive_slots), int(model_config.num_negative_slots)
  capacity = prompts.click_capacity(pos, neg)
  if max_clicks > capacity:
    raise ConfigError(f"{name} {max_clicks}: the model has {pos} positive and {neg} negative click "
                      f"slots, so at most {capacity} clicks are sure to reach it")


def load_model(args, log=print):
  """(config ConfigDict, params or None for a random init, where the weights come from).

  With weights (--checkpoint / --model), the model section comes from them; a --config given too
  must describe the same model (its other sections, e.g. eval, apply), and overrides may not
  change the model. Every problem is one ConfigError / CheckpointError line.
  """
  import ml_collections

  from ois_jax import config as config_lib
  from ois_jax.models.ois import INIT_KEYS

  if args.checkpoint and args.model:
    raise ConfigError("give --checkpoint or --model, not both")
  config = config_lib.load_config(args.config) if args.config else None
  weights = None
  if args.model:
    from ois_jax import pretrained
    weights = pretrained.load(args.model)
  elif args.checkpoint:
    from ois_jax.checkpoint import load_weights
    weights = load_weights(args.checkpoint, log=log)
  if weights is None:
    if config is None:
      raise ConfigError("give --config (random weights), --checkpoint or --model")
    return config_lib.apply_overrides(config, args.set), None, "random initialisation"

  stored = ml_collections.ConfigDict(weights.config)
  if config is not None:
    differences = config_lib.model_differences(config.model, stored.model, ignore=INIT_KEYS)
    if differences:
      raise ConfigError(f"{weights.source} holds a model of another config than --config "
                        f"{args.config}: {'; '.join(differences)}")
    config.model = stored.model
  else:
    config = stored
  model_before = config.model.to_dict()
  config_lib.apply_overrides(config, args.set)
  differences = config_lib.model_differences(model_before, config.model, ignore=INIT_KEYS)
  if differences:
    raise ConfigError(f"--config.model.* cannot change the model of {weights.source} (its weights fix it): "
                      f"{'; '.join(differences)}")
  return config, weights.params, weights.source
