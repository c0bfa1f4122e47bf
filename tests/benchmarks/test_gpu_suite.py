"""benchmarks/gpu_suite.sh end to end in --smoke mode (tiny sizes, CPU), so the suite cannot rot."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest
import shared_data

REPO = pathlib.Path(__file__).resolve().parents[2]
SUITE = REPO / "benchmarks" / "gpu_suite.sh"


def _run(*args, timeout=900):
  env = dict(os.environ, PYTHON=sys.executable)
  return subprocess.run(["bash", str(SUITE), *args], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=timeout)


def _finite(x):
  return isinstance(x, (int, float)) and math.isfinite(x)


def test_smoke_run_writes_every_figure(tmp_path):
  data_root = pathlib.Path(shared_data.require("GrabCut")).parent
  out = tmp_path / "suite.json"
  proc = _run("--smoke", "--out", str(out), "--data-dir", str(data_root))
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  doc = json.loads(out.read_text())
  assert doc["smoke"] is True and doc["all_ok"] is True
  assert set(doc["steps"]) == {"depth", "click", "loops_tiny", "train", "memory_2048"}
  s = doc["summary"]
  assert set(s["depth_ms"]) == {"vits_float32", "vits_bfloat16"}
  assert all(_finite(v) and v > 0 for v in s["depth_ms"].values())
  assert 0 < s["depth_bf16_rel_l2_vs_fp32"]["vits"] < 1
  assert set(s["decode_ms_per_click"]) == {"tiny_float32", "tiny_bfloat16"}
  assert all(_finite(v) and v > 0 for v in s["decode_ms_per_click"].values())
  assert _finite(s["SAT_s"]["loops_tiny"])
  assert s["loops_tiny"]["identical_click_sequences"] == "1/1" and _finite(s["loops_tiny"]["ratio"])
  assert _finite(s["train"]["images_per_s"]) and s["train"]["images_per_s"] > 0
  encoder = {row["resolved"]: row["temp_gib"] for row in s["memory_2048"]["encoder"]}
  assert encoder["blocked"] < encoder["plain"]  # CPU: auto is the blocked loop


def test_existing_output_is_not_overwritten_and_bad_arguments_are_refused(tmp_path):
  out = tmp_path / "suite.json"
  out.write_text("keep me")
  proc = _run("--smoke", "--out", str(out), timeout=60)
  assert proc.returncode == 2 and "--overwrite" in proc.stderr
  assert out.read_text() == "keep me"
  proc = _run("--fast", timeout=60)
  assert proc.returncode == 2 and "unknown argument --fast" in proc.stderr


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_every_step(flag):
  proc = _run(flag, timeout=60)
  assert proc.returncode == 0
  for step in ("depth", "click", "loops_", "sat_bf16", "train", "memory_2048", "parity", "--smoke"):
    assert step in proc.stdout
