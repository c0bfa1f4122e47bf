#!/usr/bin/env bash
# Every accelerator figure in one run and one JSON (meant to finish within 8 minutes on an H100/H200):
#   depth        DepthAnythingV2 ViT-S / ViT-B at 518, fp32 and bf16 (benchmarks/depth_speed.py)
#   click        OIS ViT-B 1024 encode and per-click decode, fp32 and bf16 (benchmarks/click_speed.py)
#   loops_*      jitted vs host click loop, identical click sequences, and SAT latency (256
#                single-click prompts on one image) in fp32 (benchmarks/eval_speed.py --sat)
#   sat_bf16     SAT latency of ViT-B 1024 in bf16
#   train        ViT-B 1024 bf16 train step: images/s, MFU, peak memory (benchmarks/train_speed.py)
#   memory_2048  ViT-B 2044 px encoder: bounded attention vs the plain formula, compiled temporary
#                memory, and one bounded run's peak memory (benchmarks/attention_memory.py)
#   parity       the attention and bf16 parity tests on this device (full-precision matmuls)
#
# usage: benchmarks/gpu_suite.sh [--smoke] [--out FILE] [--overwrite] [--data-dir DIR]
#   --smoke      tiny sizes (CPU, seconds per step): what tests/benchmarks/test_gpu_suite.py runs
#   --out        the JSON (default runs/gpu_suite/gpu_suite.json; refused if it exists, unless
#                --overwrite)
#   --data-dir   the benchmark data root holding DAVIS345/ (GrabCut/ with --smoke); default
#                ois_jax.data_pipelines.default_data_root()
#
# Each step runs under its own time limit (the limits add up to 8 minutes); a step that fails or
# runs out of time is recorded as such in the JSON and the suite carries on, then exits 1.
# Set PYTHON to choose the interpreter (default: python).
set -uo pipefail

SMOKE=0
OUT=runs/gpu_suite/gpu_suite.json
OVERWRITE=0
DATA_ROOT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --out) OUT="$2"; shift ;;
    --overwrite) OVERWRITE=1 ;;
    --data-dir) DATA_ROOT="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_suite.sh: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -e "$OUT" ] && [ "$OVERWRITE" -ne 1 ]; then
  echo "gpu_suite.sh: error: $OUT exists; pass --overwrite to replace it" >&2
  exit 2
fi
if [ -z "$DATA_ROOT" ]; then
  DATA_ROOT=$("$PYTHON" -c "from ois_jax.data_pipelines import default_data_root; print(default_data_root())")
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_suite.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STEPS="$WORK/steps.tsv"
: > "$STEPS"

# step NAME LIMIT_S COMMAND...: run COMMAND (its JSON goes to $WORK/NAME.json), log to $WORK/NAME.log,
# and record the status and wall seconds.
step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*" >&2
  local start ms status rc
  start=$(date +%s%N)
  timeout --kill-after=10 "$limit" "$@" > "$WORK/$name.log" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status="failed (exit $rc)" ;;
  esac
  [ "$status" = ok ] || tail -n 20 "$WORK/$name.log" >&2
  printf '%s\t%s\t%d.%03d\t%s\n' "$name" "$status" $((ms / 1000)) $((ms % 1000)) "$*" >> "$STEPS"
}

# A config file for eval_speed.py (which takes --config as a path): a base config in bfloat16.
bf16_config() {
  local base=$1 path="$WORK/${1}_bf16.py"
  printf 'from ois_jax.configs import %s\n\n\ndef get_config():\n  c = %s.get_config()\n  c.model.dtype = "bfloat16"\n  return c\n' \
    "$base" "$base" > "$path"
  echo "$path"
}

if [ "$SMOKE" -eq 1 ]; then
  DATASET=grabcut; DATA_DIR="$DATA_ROOT/GrabCut"
  step depth 120 "$PYTHON" "$HERE/depth_speed.py" --jax-only --variant vits --size 28 \
      --dtype float32 bfloat16 --repeats 1 --warmup 0 --out "$WORK/depth.json"
  step click 120 "$PYTHON" "$HERE/click_speed.py" --configs tiny --dtype float32 bfloat16 --clicks 2 \
      --repeats 1 --out "$WORK/click.json"
  step loops_tiny 180 "$PYTHON" "$HERE/eval_speed.py" --config ois_tiny --dataset $DATASET \
      --data-dir "$DATA_DIR" --limit 1 --host-limit 1 --max-clicks 2 --batch-size 1 --sat \
      --out "$WORK/loops_tiny.json"
  step train 180 "$PYTHON" "$HERE/train_speed.py" --configs ois_tiny --steps 1 --batch-size 1 \
      --peak-tflops auto --out "$WORK/train.json"
  step memory_2048 120 "$PYTHON" "$HERE/attention_memory.py" --config ois_tiny --input-size 560 \
      --parts encoder --out "$WORK/memory_2048.json"
else
  DATASET=davis345; DATA_DIR="$DATA_ROOT/DAVIS345"
  step depth 45 "$PYTHON" "$HERE/depth_speed.py" --jax-only --variant vits vitb --size 518 \
      --dtype float32 bfloat16 --repeats 10 --out "$WORK/depth.json"
  step click 75 "$PYTHON" "$HERE/click_speed.py" --configs vitb_1024 --dtype float32 bfloat16 \
      --clicks 20 --repeats 3 --out "$WORK/click.json"
  step sat_bf16 50 "$PYTHON" "$HERE/eval_speed.py" --config "$(bf16_config ois_vitb_1024)" \
      --dataset $DATASET --data-dir "$DATA_DIR" --limit 1 --sat --skip-loops --out "$WORK/sat_bf16.json"
  step loops_tiny 55 "$PYTHON" "$HERE/eval_speed.py" --config ois_tiny --dataset $DATASET \
      --data-dir "$DATA_DIR" --limit 8 --host-limit 4 --max-clicks 20 --out "$WORK/loops_tiny.json"
  step loops_vitb_1024 80 "$PYTHON" "$HERE/eval_speed.py" --config ois_vitb_1024 --dataset $DATASET \
      --data-dir "$DATA_DIR" --limit 8 --host-limit 4 --max-clicks 20 --sat --out "$WORK/loops_vitb_1024.json"
  step train 60 "$PYTHON" "$HERE/train_speed.py" --configs ois_vitb_1024 --dtype bfloat16 --steps 10 \
      --peak-tflops auto --out "$WORK/train.json"
  step memory_2048 50 "$PYTHON" "$HERE/attention_memory.py" --config ois_vitb_2048 --dtype bfloat16 \
      --parts encoder --run --out "$WORK/memory_2048.json"
  step parity 60 "$PYTHON" -m pytest -q -p no:cacheprovider "$HERE/../tests/models/test_vit_attention.py" \
      "$HERE/../tests/models/test_bf16.py" --junitxml="$WORK/parity.xml"
fi

mkdir -p "$(dirname "$OUT")"
"$PYTHON" - "$WORK" "$OUT" "$SMOKE" "$DATA_DIR" <<'EOF'
"""Merge the steps' JSON into one document with a summary of the headline figures."""
import datetime
import json
import os
import sys
import xml.etree.ElementTree as ET

work, out, smoke, data_dir = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
steps = {}
with open(os.path.join(work, "steps.tsv")) as f:
  for line in f:
    name, status, seconds, command = line.rstrip("\n").split("\t", 3)
    entry = {"status": status, "seconds": float(seconds), "command": command}
    path = os.path.join(work, f"{name}.json")
    if os.path.exists(path):
      with open(path) as g:
        entry["result"] = json.load(g)
    if name == "parity" and os.path.exists(os.path.join(work, "parity.xml")):
      suite = ET.parse(os.path.join(work, "parity.xml")).getroot()
      suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
      entry["result"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    if status != "ok":
      with open(os.path.join(work, f"{name}.log")) as g:
        entry["log_tail"] = g.read()[-3000:]
    steps[name] = entry


def result(name):
  return steps.get(name, {}).get("result")


summary = {}
if result("depth"):
  summary["depth_ms"] = {f"{r['variant']}_{r['dtype']}": 1e3 * r["jax_median_s"] for r in result("depth")}
  summary["depth_bf16_rel_l2_vs_fp32"] = {r["variant"]: r["rel_l2_vs_jax_float32"]
                                          for r in result("depth") if "rel_l2_vs_jax_float32" in r}
if result("click"):
  rows = result("click")["results"]
  summary["decode_ms_per_click"] = {f"{r['config']}_{r['dtype']}": r["decode_ms_median"] for r in rows}
  summary["encode_s"] = {f"{r['config']}_{r['dtype']}": r["encode_s_median"] for r in rows}
  summary["decode_goal_ms"], summary["paper_SPC_ms"] = 5.0, 31.0
sat = {name: s["result"]["SAT"] for name, s in steps.items()
       if isinstance(s.get("result"), dict) and "SAT" in s["result"]}
if sat:
  summary["SAT_s"], summary["SAT_goal_s"], summary["paper_SAT_s"] = sat, 0.5, 9.2
for name in ("loops_tiny", "loops_vitb_1024"):
  r = result(name)
  if r and "ratio" in r:
    summary[name] = {k: r[k] for k in ("jitted_clicks_per_s", "host_clicks_per_s", "ratio",
                                       "identical_click_sequences")}
if result("train"):
  r = result("train")[0]
  summary["train"] = {k: r.get(k) for k in ("config", "dtype", "batch_size", "images_per_s", "mfu",
                                            "peak_tflops", "peak_memory_gib")}
if result("memory_2048"):
  r = result("memory_2048")
  summary["memory_2048"] = {"tokens": r["tokens"], "dtype": r["dtype"],
                            "plain_logits_gib_per_layer": r["plain_logits_bytes_per_layer"] / 2**30,
                            "encoder": [{k: row.get(k) for k in ("attention", "resolved", "temp_gib",
                                                                 "run_s", "peak_memory_gib")}
                                        for row in r["results"]],
                            "plain_over_bounded": r.get("encoder_temp_plain_over_bounded")}
if result("parity"):
  summary["parity_tests"] = result("parity")

device = next((s["result"].get("device") for s in steps.values()
               if isinstance(s.get("result"), dict) and "device" in s["result"]), None)
doc = {"suite": "gpu_suite", "smoke": smoke, "date": datetime.datetime.now().isoformat(timespec="seconds"),
       "device": device, "data_dir": data_dir, "total_seconds": sum(s["seconds"] for s in steps.values()),
       "all_ok": all(s["status"] == "ok" for s in steps.values()), "summary": summary, "steps": steps}
with open(out, "w") as f:
  json.dump(doc, f, indent=2)
  f.write("\n")
print(json.dumps({"out": out, "all_ok": doc["all_ok"], "total_seconds": doc["total_seconds"],
                  "summary": summary}, indent=2))
sys.exit(0 if doc["all_ok"] else 1)
EOF
