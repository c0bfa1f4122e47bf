"""The repository's one code style (pyproject [tool.ruff]): pyflakes errors and double quotes."""

import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
  ruff = shutil.which("ruff") or shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent))
  assert ruff, "ruff is not installed (it is in the dev extra: pip install -e '.[dev]')"
  result = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr
