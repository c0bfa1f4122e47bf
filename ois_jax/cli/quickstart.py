"""`ois-jax quickstart [--workdir DIR]`: the recipe in miniature (ois_jax/proj/miniature/recipe.py)."""

import argparse

from ois_jax import config as config_lib
from ois_jax.proj.miniature import recipe

DEPTH_FLAG = "--depth-config."  # stage 1's overrides; stage 2's are --config.KEY=VALUE


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="ois-jax quickstart", description=recipe.__doc__.split("\n\n")[0],
                                   epilog=recipe.__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="quickstart_run")
  parser.add_argument("--depth-steps", type=int, default=None,
                      help="stage-1 steps (default: the stage-1 config's total_steps)")
  parser.add_argument("--steps", type=int, default=None,
                      help="stage-2 steps of each OIS model (default: the stage-2 config's total_steps)")
  parser.add_argument("--eval-samples", type=int, default=100, help="held-out scenes (default 100)")
  parser.add_argument("--clicks", type=int, default=20, help="clicks per scene (default 20)")
  parser.add_argument("--quiet", action="store_true", help="no progress bars")
  parser.usage = ("ois-jax quickstart [options] [--depth-config.KEY=VALUE ...] [--config.KEY=VALUE ...]"
                  "\n  --depth-config.KEY=VALUE overrides the stage-1 config, e.g. model.input_size=56"
                  "\n  --config.KEY=VALUE overrides the stage-2 config, e.g. data.batch_size=4")
  rest, found = config_lib.split_overrides(argv, (DEPTH_FLAG, config_lib.OVERRIDE_FLAG))
  args = parser.parse_args(rest)
  recipe.quickstart(args.workdir, depth_steps=args.depth_steps, steps=args.steps,
                    eval_samples=args.eval_samples, clicks=args.clicks,
                    depth_overrides=found[DEPTH_FLAG], overrides=found[config_lib.OVERRIDE_FLAG],
                    quiet=args.quiet)
  return 0
