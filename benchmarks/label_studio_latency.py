"""Latency of a click through Label Studio, as JSON: a real Label Studio (the pinned version in
its cached venv, tests/label_studio/harness.py) asks `ois-jax label-studio` for the region of a
smart keypoint (POST /api/ml/{id}/interactive-annotating, keypoint in, brushlabels region out),
timed from the request to the answer over N clicks on one GrabCut image, after a first click
that encodes it. Beside it: the same requests sent straight to the backend's /predict, and the
bare `Predictor.predict` decode for the same clicks.

  python benchmarks/label_studio_latency.py [--clicks 10] [--image 106024] [--model NAME | --checkpoint DIR]

The clicks alternate inside the object (positive) and on the background (negative), fixed by
the seed; each request carries all clicks so far, as Label Studio sends the region's keypoints.
The figures depend on the machine and its load: the load average is recorded.
"""

import argparse
import json
import os
import sys
import time
import urllib.request

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from _output import emit  # noqa: E402

from ois_jax import Predictor  # noqa: E402
from ois_jax.data_pipelines import default_data_root  # noqa: E402
from ois_jax.label_studio import backend  # noqa: E402
# The real-Label-Studio harness of the backend's tests drives it here too (run from a checkout).
sys.path.insert(0, os.path.join(REPO, "tests", "label_studio"))
import harness  # noqa: E402  (tests/label_studio/harness.py)

CONFIG = backend.EXAMPLE_LABEL_CONFIG


def keypoint(yx, hw, positive):
  (y, x), (h, w) = yx, hw
  return {"type": "keypointlabels", "from_name": "click", "to_name": "image", "is_positive": positive,
          "original_width": w, "original_height": h,
          "value": {"x": (x + 0.5) / w * 100, "y": (y + 0.5) / h * 100, "keypointlabels": ["Object"]}}


def stats(seconds):
  ms = np.asarray(seconds) * 1000
  return {"median_ms": round(float(np.median(ms)), 2), "min_ms": round(float(ms.min()), 2),
          "max_ms": round(float(ms.max()), 2), "n": int(ms.size)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--clicks", type=int, default=10)
  parser.add_argument("--image", default="106024", help="GrabCut image id (in $OIS_DATA_ROOT/GrabCut)")
  parser.add_argument("--model", default="ois-tiny-procedural")
  parser.add_argument("--checkpoint")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", help="also write the JSON here")
  args = parser.parse_args()
  root = os.path.join(str(default_data_root() or os.path.join(REPO, "..", "shared", "data")), "GrabCut")
  path = os.path.join(root, "data_GT", f"{args.image}.jpg")
  gt = np.asarray(Image.open(os.path.join(root, "boundary_GT", f"{args.image}.bmp"))) > 128
  image = np.asarray(Image.open(path).convert("RGB"))
  hw = gt.shape
  rng = np.random.default_rng(args.seed)
  inside, outside = np.argwhere(gt), np.argwhere(~gt)
  plan = [(tuple(int(v) for v in (inside if i % 2 == 0 else outside)[rng.integers(len(inside if i % 2 == 0
          else outside))]), i % 2 == 0) for i in range(args.clicks + 1)]
  model_args = ["--checkpoint", args.checkpoint] if args.checkpoint else ["--model", args.model]

  venv, install_s = harness.ensure_venv(log=lambda m: print(m, file=sys.stderr))
  result = {"benchmark": "label_studio_latency", "label_studio": harness.VERSION, "model": model_args[1],
            "image": f"GrabCut/{args.image} ({hw[1]}x{hw[0]})", "clicks": args.clicks,
            "venv_install_s": None if install_s is None else round(install_s, 1)}
  start = time.perf_counter()
  with harness.LabelStudio(venv) as ls, harness.Backend(model_args, ls) as backend:
    result["startup_s"] = round(time.perf_counter() - start, 1)
    project = ls.create_project("OIS latency", CONFIG)
    (task,) = ls.upload(project, [path])
    ml = ls.connect_backend(project, backend.url)
    sent = [keypoint(plan[0][0], hw, True)]
    t0 = time.perf_counter()
    answer = ls.interactive(ml, task, sent)
    result["first_click_with_encode_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    assert "errors" not in answer, answer
    through_ls, direct = [], []
    task_data = ls.task(task)
    for yx, positive in plan[1:]:
      sent.append(keypoint(yx, hw, positive))
      t0 = time.perf_counter()
      answer = ls.interactive(ml, task, list(sent))
      through_ls.append(time.perf_counter() - t0)
      assert "errors" not in answer and answer["data"]["result"], answer
    # The same clicks sent straight to the backend (no Label Studio in between), on a new task id.
    body = {"tasks": [{"id": f"direct-{task}", "data": task_data["data"]}], "label_config": CONFIG,
            "params": {"context": {"result": sent[:1]}}}
    _post(backend.url + "/predict", body)  # encode
    for k in range(2, len(sent) + 1):
      body["params"]["context"]["result"] = sent[:k]
      t0 = time.perf_counter()
      _post(backend.url + "/predict", body)
      direct.append(time.perf_counter() - t0)
    result["backend_encodes"] = backend.health()["encodes"]
  predictor = Predictor.from_checkpoint(args.checkpoint) if args.checkpoint else Predictor.from_pretrained(args.model)
  predictor.set_image(image)
  clicks = [(y + 0.0, x + 0.0, p) for (y, x), p in plan]
  probs = predictor.predict(clicks[:1])
  bare = []
  for k in range(2, len(clicks) + 1):
    t0 = time.perf_counter()
    probs = predictor.predict(clicks[:k], prev_mask=probs)
    bare.append(time.perf_counter() - t0)
  result["through_label_studio"] = stats(through_ls)
  result["backend_predict_direct"] = stats(direct)
  result["bare_predictor_decode"] = stats(bare)
  result["load_average"] = [round(v, 2) for v in os.getloadavg()]
  emit(result, args.out)


def _post(url, body):
  request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(request, timeout=300) as response:
    return json.loads(response.read())


if __name__ == "__main__":
  main()
