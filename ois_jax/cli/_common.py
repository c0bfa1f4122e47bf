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


def check_probability(value, name: str) -> None:
  """ConfigError unless `value` is None or a number in [0, 1] (NaN is refused too)."""
  if value is not None and not 0.0 <= float(value) <= 1.0:
    raise ConfigError(f"{name} must be in [0, 1], got {value}")


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
