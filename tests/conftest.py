"""Makes the shared test helpers importable by name, and sets the data root of the tests.

pytest runs with --import-mode=importlib, so test folders are not on sys.path; the helper
modules (tests/shared_data.py, tests/cli_errors.py, tests/models/ois_testlib.py, tests/evaluation/fake_model.py,
tests/demo/browser.py, tests/label_studio/harness.py) are reached from here, and so is
scripts/faults.py, the fault makers the reliability table shares with the fault tests.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
for _folder in ("", "models", "evaluation", "demo", "label_studio"):
  _path = os.path.join(_HERE, _folder)
  if _path not in sys.path:
    sys.path.insert(0, _path)
_SCRIPTS = os.path.join(os.path.dirname(_HERE), "scripts")
if _SCRIPTS not in sys.path:
  sys.path.append(_SCRIPTS)

# The test configuration's data root: the benchmark folders beside the repository
# (../shared/data), unless $OIS_DATA_ROOT names another. Subprocesses of the tests inherit it.
os.environ.setdefault("OIS_DATA_ROOT", os.path.join(os.path.dirname(os.path.dirname(_HERE)), "shared", "data"))
