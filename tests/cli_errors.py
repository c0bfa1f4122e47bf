"""What a command printed when it refused: `one_line(capsys)` (on sys.path via tests/conftest.py)."""


def one_line(capsys, prefix: str = "ois-jax ") -> str:
  """The command's error in the captured stderr: exactly one line besides the "[command] ..."
  progress lines, starting with `prefix`, and no traceback or event-loop echo."""
  err = capsys.readouterr().err.strip()
  assert err and "Traceback" not in err and "Event loop is closed" not in err, err
  errors = [line for line in err.splitlines() if not line.startswith("[")]
  assert len(errors) == 1 and errors[0].startswith(prefix), err
  return errors[0]
