"""Runs every notebook in notebooks/ so that they cannot rot.

Each notebook's code cells are executed in order in one fresh namespace, with the working
directory set to notebooks/ (as Jupyter does) and matplotlib's Agg backend; `plt.show()` closes the
figures instead. A failing cell fails the test with the notebook name and cell number. The
notebooks are also checked to be valid nbformat v4 JSON with no stored outputs and no IPython-only
syntax (magics, shell escapes), since plain `exec` runs them here.
"""

import json
import pathlib
import re
import traceback

import pytest

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ("01_interactive_segmentation.ipynb", "02_depth_and_checkpoints.ipynb",
            "03_evaluate_and_train.ipynb")
IPYTHON_ONLY = re.compile(r"^\s*[%!]|get_ipython\(", re.MULTILINE)


def _load(path: pathlib.Path) -> dict:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _code_cells(notebook: dict) -> list[str]:
  return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def test_all_notebooks_present():
  assert sorted(p.name for p in NOTEBOOKS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_format(path):
  nb = _load(path)
  assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 4
  assert nb["metadata"]["kernelspec"]["language"] == "python"
  assert nb["cells"] and nb["cells"][0]["cell_type"] == "markdown", "start with a title cell"
  ids = [c.get("id") for c in nb["cells"]]
  assert len(set(ids)) == len(ids), "cell ids must be unique"
  for i, cell in enumerate(nb["cells"]):
    assert cell["cell_type"] in ("markdown", "code"), (i, cell["cell_type"])
    assert isinstance(cell["source"], list) and all(isinstance(s, str) for s in cell["source"])
    if cell["cell_type"] == "code":
      assert cell["outputs"] == [] and cell["execution_count"] is None, f"cell {i} has stored outputs"
      source = "".join(cell["source"])
      assert not IPYTHON_ONLY.search(source), f"cell {i} uses IPython-only syntax"
      compile(source, f"{path.name}[cell {i}]", "exec")  # a syntax error fails before any run


@pytest.fixture
def notebook_env(monkeypatch, tmp_path):
  """cwd notebooks/, Agg backend, figures closed on show(), a private dataset cache."""
  import matplotlib
  matplotlib.use("Agg", force=True)
  import matplotlib.pyplot as plt
  monkeypatch.chdir(NOTEBOOK_DIR)
  monkeypatch.setattr(plt, "show", lambda *a, **k: plt.close("all"))
  # Evaluation sets are prepared into $OIS_JAX_DATA_CACHE: keep the test's copy out of ~/.cache.
  monkeypatch.setenv("OIS_JAX_DATA_CACHE", str(tmp_path / "tfds_cache"))
  yield
  plt.close("all")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, notebook_env):
  namespace = {"__name__": "__main__"}
  cells = _code_cells(_load(path))
  assert cells, f"{path.name} has no code"
  for i, source in enumerate(cells):
    try:
      exec(compile(source, f"{path.name}[code cell {i}]", "exec"), namespace)
    except Exception:  # noqa: BLE001 - reported with the cell's own traceback
      pytest.fail(f"{path.name}: code cell {i} failed:\n{traceback.format_exc()}\n--- cell source ---\n"
                  f"{source}", pytrace=False)
