"""Runs every notebook in notebooks/ so that they cannot rot.

Each notebook's code cells are executed in order in one fresh namespace (plain `exec`), in its own
Python process with the working directory notebooks/ (as Jupyter does), matplotlib's Agg backend
and `plt.show()` closing the figures. The notebooks run two at a time: most of their time is
single-threaded XLA compilation, so two processes use both CI cores. A failing cell fails that
notebook's test with the cell number, its source and the traceback.

The notebooks are also checked to be valid nbformat v4 JSON with no stored outputs and no
IPython-only syntax (magics, shell escapes), which plain `exec` could not run.
"""

import concurrent.futures
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ("01_interactive_segmentation.ipynb", "02_depth_and_checkpoints.ipynb",
            "03_evaluate_and_train.ipynb")
IPYTHON_ONLY = re.compile(r"^\s*[%!]|get_ipython\(", re.MULTILINE)
TIMEOUT_S = 600  # per notebook; a hang must not eat the suite's time

# Executed as `python -c RUNNER notebook.ipynb` inside notebooks/.
RUNNER = r"""
import json, sys, traceback
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.show = lambda *args, **kwargs: plt.close("all")
path = sys.argv[1]
with open(path, encoding="utf-8") as f:
  cells = ["".join(c["source"]) for c in json.load(f)["cells"] if c["cell_type"] == "code"]
namespace = {"__name__": "__main__"}
for i, source in enumerate(cells):
  try:
    exec(compile(source, f"{path}[code cell {i}]", "exec"), namespace)
  except BaseException:
    print(f"\nNOTEBOOK CELL FAILED: {path} code cell {i}\n--- source ---\n{source}\n--- traceback ---",
          file=sys.stderr)
    traceback.print_exc()
    sys.exit(1)
  plt.close("all")
print(f"ran {len(cells)} code cells of {path}")
"""


def _load(path: pathlib.Path) -> dict:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


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
  code_cells = 0
  for i, cell in enumerate(nb["cells"]):
    assert cell["cell_type"] in ("markdown", "code"), (i, cell["cell_type"])
    assert isinstance(cell["source"], list) and all(isinstance(s, str) for s in cell["source"])
    if cell["cell_type"] == "code":
      code_cells += 1
      assert cell["outputs"] == [] and cell["execution_count"] is None, f"cell {i} has stored outputs"
      source = "".join(cell["source"])
      assert not IPYTHON_ONLY.search(source), f"cell {i} uses IPython-only syntax"
      compile(source, f"{path.name}[cell {i}]", "exec")  # a syntax error fails before any run
  assert code_cells > 0


def _run(path: pathlib.Path, cache_dir: str, tmp_dir: str) -> subprocess.CompletedProcess:
  # TMPDIR: what a notebook leaves in its temporary work dir stays under pytest's basetemp.
  env = dict(os.environ, MPLBACKEND="Agg", OIS_JAX_DATA_CACHE=cache_dir, PYTHONUNBUFFERED="1",
             TMPDIR=tmp_dir)
  try:
    return subprocess.run([sys.executable, "-c", RUNNER, path.name], cwd=NOTEBOOK_DIR, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
  except subprocess.TimeoutExpired as e:
    return subprocess.CompletedProcess(e.cmd, -1, e.stdout or "", f"timed out after {TIMEOUT_S} s")


@pytest.fixture(scope="module")
def notebook_runs(tmp_path_factory):
  """Starts all notebooks, two at a time; {name: Future[CompletedProcess]}."""
  # A private dataset cache keeps the test's prepared copy of GrabCut out of ~/.cache.
  cache_dir = str(tmp_path_factory.mktemp("tfds_cache"))
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
  # Longest first (03 trains and evaluates), so the two workers finish at about the same time.
  futures = {p.name: pool.submit(_run, p, cache_dir, str(tmp_path_factory.mktemp(p.stem)))
             for p in sorted(NOTEBOOKS, reverse=True)}
  yield futures
  pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, notebook_runs):
  result = notebook_runs[path.name].result()
  if result.returncode != 0:
    pytest.fail(f"{path.name} failed (exit {result.returncode}):\n{result.stderr[-8000:]}", pytrace=False)
  assert f"ran {len(_code_cells(path))} code cells" in result.stdout


def _code_cells(path: pathlib.Path) -> list[str]:
  return ["".join(c["source"]) for c in _load(path)["cells"] if c["cell_type"] == "code"]
