"""`ois-jax train --config CFG --workdir DIR [--config.KEY=VALUE ...]`

Trains OIS from a config (a file with `get_config()`, `file.py:arg`, or an installed config name;
any key can be overridden: `--config.total_steps=2000`). Running
again on the same workdir resumes from its latest checkpoint. The workdir receives the resolved
`config.json`, resumable checkpoints `checkpoints/<step>/`, and the self-describing weights
`final/` (last step) and `best/` (best validation step) that `ois-jax evaluate --checkpoint DIR`,
`ois-jax segment --checkpoint DIR` and `Predictor.from_checkpoint(DIR)` load. Start from
DepthAnythingV2 weights with `--config.model.depth_checkpoint=PATH` (a converted folder, or a
.pth / .safetensors file).
"""

import argparse
import sys

from ois_jax.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="ois-jax train", description=__doc__.split("\n\n")[0],
                              epilog=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", help="config file, `file.py:arg` or installed config name (required); "
                 "--config.KEY=VALUE overrides one key (repeatable)")
  p.add_argument("--workdir", help="folder for checkpoints, logs, config.json and the weights (required)")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  return p


def parse(argv: list[str]):
  """(config, workdir, quiet) from the command line."""
  from ois_jax import config as config_lib
  args = config_lib.parse_with_overrides(build_parser(), argv)
  if not args.config:
    raise ConfigError("--config is required (e.g. --config configs/ois_tiny.py)")
  if not args.workdir:
    raise ConfigError("--workdir is required")
  return config_lib.load_config(args.config, args.set), args.workdir, args.quiet


def main(argv: list[str]) -> int:
  config, workdir, quiet = parse(argv)
  from ois_jax.training import trainer
  summary = trainer.train(config, workdir, quiet=quiet)
  import jax
  if jax.process_index() != 0:  # multi-process: process 0 reports
    return 0
  last = summary["history"][-1] if summary["history"] else {}
  print(f"Finished at step {summary['final_step']} in {summary['workdir']}"
        + (f" (loss {last['loss']:.4f})" if "loss" in last else ""))
  for v in summary["validation"][-1:]:
    print("validation: " + ", ".join(f"{k}={x:.3f}" for k, x in v.items() if k != "step"))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
