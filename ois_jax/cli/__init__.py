"""`ois-jax` command line: one module per subcommand, each with `main(argv) -> int`.

Subcommands are imported lazily so `ois-jax convert` does not pay for the training stack.
Every command runs with the persistent compilation cache on (`ois_jax.compilation_cache`);
`--compilation-cache DIR` / `--no-compilation-cache`, anywhere on the line, move it or turn it
off for that run. A command's error is one line; `--verbose` (anywhere on the line) adds its
traceback and keeps the logs of background libraries (ois_jax/_logging.py).
"""

import importlib
import sys

from ois_jax import _logging, compilation_cache, stopping
from ois_jax.cli import _log
from ois_jax.errors import OISError

COMMANDS = {
    "quickstart": "The paper's recipe in miniature: depth model, OIS on top, evaluation (the main job).",
    "convert": "Convert DepthAnythingV2 checkpoints between PyTorch (.pth / safetensors) and Flax.",
    "depth": "Predict relative inverse depth for an image with a converted checkpoint.",
    "segment": "Segment an image from clicks with a checkpoint or a config.",
    "evaluate": "Run the standard click-loop benchmark (NoC/NoF/mIoU/SPC) on a dataset.",
    "compare": "Overlay several metrics.json files in one table and one plot.",
    "train": "Train OIS from a config (resumes when the workdir holds a checkpoint).",
    "export": "Export a checkpoint to ONNX or jax.export (image encoder + click decoder, manifest).",
    "demo": "Serve the interactive web demo: click on an image, see the mask, depth, order maps.",
    "label-studio": "Serve OIS as a Label Studio ML backend: smart keypoints in, brush masks out.",
}
# Commands that compile XLA programs: their unannounced long compilations are logged.
COMPILING = ("quickstart", "depth", "segment", "evaluate", "train", "export", "demo", "label-studio")


def _usage() -> str:
  lines = ["usage: ois-jax COMMAND [options]", "", "commands:"]
  lines += [f"  {name:<12} {help_}" for name, help_ in COMMANDS.items()]
  lines += ["", "options for every command:",
            "  --compilation-cache DIR  keep compiled XLA programs in DIR (default: "
            f"{compilation_cache.default_dir()}, or ${compilation_cache.ENV_VAR})",
            "  --no-compilation-cache   compile everything afresh and keep nothing",
            "  --verbose                an error's traceback, and the logs of orbax, absl, tfds"]
  lines += ["", "Run `ois-jax COMMAND --help` for a command's options."]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  program = argv is None  # run as `ois-jax` (not called from Python)
  argv = sys.argv[1:] if argv is None else argv
  verbose = "--verbose" in argv
  argv = [a for a in argv if a != "--verbose"]
  if not argv or argv[0] in ("-h", "--help"):
    print(_usage())
    return 0
  try:
    argv, cache_setting = _pop_cache_option(argv)
  except ValueError as e:
    print(f"ois-jax: {e}", file=sys.stderr)
    return 2
  if not argv:
    print(_usage())
    return 0
  command, rest = argv[0], argv[1:]
  if command not in COMMANDS:
    print(f"ois-jax: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
    return 2
  _logging.quiet_background_libraries(verbose)
  compilation_cache.enable(cache_setting, force=cache_setting is not None)
  _log.setup(command)
  if command in COMPILING:
    compilation_cache.report_unannounced()
  module = importlib.import_module(f"ois_jax.cli.{command.replace('-', '_')}")
  try:
    with stopping.signals_stop():  # Ctrl-C / SIGTERM: one line saying what was kept
      return module.main(rest) or 0
  except OISError as e:  # user-facing problems: one clear line, no traceback
    if _logging.is_verbose(verbose):
      import traceback
      traceback.print_exc()
    print(f"ois-jax {command}: error: {e}", file=sys.stderr)
    return getattr(e, "exit_code", 1)
  except KeyboardInterrupt as e:
    line, code = stopping.message(command, e)
    print(f"\n{line}", file=sys.stderr)
    if program:
      stopping.exit_now(code)
    return code


def _pop_cache_option(argv: list[str]) -> tuple[list[str], str | None]:
  """Removes --compilation-cache DIR / --compilation-cache=DIR / --no-compilation-cache from argv.

  Returns (the other arguments, the folder or "off"; None when no option was given).
  """
  rest, setting, i = [], None, 0
  while i < len(argv):
    arg = argv[i]
    if arg == "--no-compilation-cache":
      setting = "off"
    elif arg == "--compilation-cache":
      if i + 1 >= len(argv):
        raise ValueError("--compilation-cache needs a folder (or use --no-compilation-cache)")
      setting, i = argv[i + 1], i + 1
    elif arg.startswith("--compilation-cache="):
      setting = arg.partition("=")[2]
    else:
      rest.append(arg)
    i += 1
  return rest, setting


if __name__ == "__main__":
  sys.exit(main())
