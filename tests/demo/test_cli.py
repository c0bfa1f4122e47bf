"""`ois-jax demo`: its defaults, and bad arguments as one line before any server starts."""

import pathlib

import pytest

from ois_jax import cli
from ois_jax.cli import demo

TINY = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "ois_tiny.py")


def one_line(capsys) -> str:
  err = capsys.readouterr().err.strip()
  assert err and "Traceback" not in err, err
  assert len(err.splitlines()) == 1 and err.startswith("ois-jax demo: error: "), err
  return err


def test_defaults_bind_this_machine_only_with_the_bundled_model():
  args = demo.build_parser().parse_args([])
  assert (args.host, args.port) == ("127.0.0.1", 7860)
  assert demo.DEFAULT_MODEL == "ois-tiny-procedural"
  assert "demo" in cli.COMMANDS


@pytest.mark.parametrize("argv, needle", [
    (["--port", "70000"], "--port 70000: not a TCP port"),
    (["--max-side", "5"], "--max-side 5 is below the 14-pixel patch size"),
    (["--model", "ois-tiny-procedural", "--seed", "3"], "--seed chooses random weights"),
    (["--model", "ois-huge"], "unknown model 'ois-huge'"),
    (["--checkpoint", "/nonexistent/ois_run"], "/nonexistent/ois_run"),
    (["--config", TINY, "--config.model.depth_source=external"], "own depth head"),
])
def test_bad_arguments_are_one_line(capsys, argv, needle):
  assert cli.main(["demo", *argv]) != 0
  assert needle in one_line(capsys)
