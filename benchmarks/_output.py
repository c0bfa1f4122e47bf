"""The one way a benchmark reports: its JSON on stdout, and in a file too when asked (--out)."""

import json
import os


def emit(result, out: str | None = None) -> None:
  """Print `result` as indented JSON; also write it to `out` (its folder made) when given."""
  text = json.dumps(result, indent=2)
  print(text)
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
      f.write(text + "\n")
