"""`ois-jax` command line: one module per subcommand, each with `main(argv) -> int`.

Subcommands are imported lazily so `ois-jax convert` does not pay for the training stack.
"""

import importlib
import sys

from ois_jax.errors import OISError

COMMANDS = {
    "quickstart": "The paper's recipe in miniature: depth model, OIS on top, evaluation (the main job).",
    "convert": "Convert DepthAnythingV2 checkpoints between PyTorch (.pth / safetensors) and Flax.",
    "depth": "Predict relative inverse depth for an image with a converted checkpoint.",
    "segment": "Segment an image from clicks with a checkpoint or a config.",
    "evaluate": "Run the standard click-loop benchmark (NoC/NoF/mIoU/SPC) on a dataset.",
    "compare": "Overlay several metrics.json files in one table and one plot.",
    "train": "Train OIS from a config (resumes when the workdir holds a checkpoint).",
}


def _usage() -> str:
  lines = ["usage: ois-jax COMMAND [options]", "", "commands:"]
  lines += [f"  {name:<11} {help_}" for name, help_ in COMMANDS.items()]
  lines += ["", "Run `ois-jax COMMAND --help` for a command's options."]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ("-h", "--help"):
    print(_usage())
    return 0
  command, rest = argv[0], argv[1:]
  if command not in COMMANDS:
    print(f"ois-jax: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
    return 2
  module = importlib.import_module(f"ois_jax.cli.{command}")
  try:
    return module.main(rest) or 0
  except OISError as e:  # user-facing problems: one clear line, no traceback
    print(f"ois-jax {command}: error: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
