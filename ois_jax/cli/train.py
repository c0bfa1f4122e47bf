"""`ois-jax train --config CFG --workdir DIR [--config.KEY=VALUE ...]`.

Config files are Python files with `get_config()` (ml_collections config_flags); any key can be
overridden on the command line. Running again on the same workdir resumes from its latest
checkpoint. The resolved config is written to `DIR/config.json`.
"""

import sys

from absl import flags
from ml_collections import config_flags

from ois_jax.errors import OISError


def parse(argv: list[str]):
  """Parses argv (without the program name) into (config, workdir, quiet) with fresh flag values."""
  fv = flags.FlagValues()
  full_argv = ["ois-jax train"] + list(argv)
  # sys_argv: the overrides come from the dispatcher's argv, not from sys.argv.
  config_flags.DEFINE_config_file("config", None, "Training config file (get_config()).",
                                  flag_values=fv, lock_config=False, sys_argv=full_argv)
  flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and config.json.",
                      flag_values=fv)
  flags.DEFINE_bool("quiet", False, "No progress bar.", flag_values=fv)
  if any(a in ("-h", "--help", "--helpfull") for a in argv):
    print(__doc__.strip())
    print(fv.main_module_help() if hasattr(fv, "main_module_help") else "")
    return None
  try:
    fv(full_argv)
  except (flags.Error, OSError, ImportError, SyntaxError) as e:
    raise OISError(str(e).splitlines()[0] + (" (" + str(e).splitlines()[-1].strip() + ")"
                                             if "\n" in str(e) else "")) from e
  try:
    config = fv.config  # a config that failed to load is a proxy raising on first use
    if config is not None:
      config.get("name")
  except (OSError, ImportError, AttributeError, SyntaxError, flags.Error) as e:
    raise OISError(f"cannot load the config: {str(e).splitlines()[-1].strip()}") from e
  if config is None:
    raise OISError("--config is required (e.g. --config configs/ois_tiny.py)")
  if not fv.workdir:
    raise OISError("--workdir is required")
  return config, fv.workdir, fv.quiet


def main(argv: list[str]) -> int:
  parsed = parse(argv)
  if parsed is None:
    return 0
  config, workdir, quiet = parsed
  from ois_jax.training import trainer
  summary = trainer.train(config, workdir, quiet=quiet)
  last = summary["history"][-1] if summary["history"] else {}
  print(f"Finished at step {summary['final_step']} in {summary['workdir']}"
        + (f" (loss {last['loss']:.4f})" if "loss" in last else ""))
  for v in summary["validation"][-1:]:
    print("validation: " + ", ".join(f"{k}={x:.3f}" for k, x in v.items() if k != "step"))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
