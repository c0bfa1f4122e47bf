"""Latency of `ois-jax demo` as a user sees it, as JSON: in headless Chromium, the time from a
mouse click on the image to the updated overlay (loaded), over N clicks on one procedural scene,
with the server's own figures from the page (encode once per image, per-click server time and
decode time).

  python benchmarks/demo_latency.py [--clicks 10] [MODEL OPTIONS OF ois-jax demo]
  python benchmarks/demo_latency.py --model ois-tiny-procedural
  python benchmarks/demo_latency.py --config configs/ois_vits_518.py     # random ViT-S 518

The clicks alternate inside the scene's objects (positive) and on its background (negative),
in a fixed order. The figures depend on the machine and its load: the load average is recorded.
"""

import argparse
import json
import os
import re
import sys
import tempfile

import numpy as np
from PIL import Image

from ois_jax.data_pipelines.procedural import ProceduralScenes

# The browser harness of the demo's tests drives the page here too (run from a checkout).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "demo"))
import browser  # noqa: E402  (tests/demo/browser.py)


def _clicks(scene: dict, count: int, seed: int = 0):
  """(y, x, positive) alternating object / background pixels, fixed by the seed."""
  rng = np.random.default_rng(seed)
  owner = scene["owner"]
  inside, outside = np.argwhere(owner >= 0), np.argwhere(owner < 0)
  picks = []
  for i in range(count):
    pool = inside if i % 2 == 0 else outside
    y, x = pool[rng.integers(len(pool))]
    picks.append((int(y), int(x), i % 2 == 0))
  return picks


def _figures(status: str) -> dict:
  numbers = {}
  for key, pattern in (("encode_ms", r"encoded once in (\d+) ms"), ("server_ms", r"last click: (\d+) ms"),
                       ("decode_ms", r"decode (\d+) ms")):
    match = re.search(pattern, status)
    numbers[key] = float(match.group(1)) if match else None
  return numbers


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--clicks", type=int, default=10)
  parser.add_argument("--scene", type=int, default=2, help="index of the held-out procedural scene")
  args, model_args = parser.parse_known_args()
  scene = ProceduralScenes(args.scene + 1, seed=0, split="val").layout(args.scene)
  hw = scene["owner"].shape
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, f"scene{args.scene}.png")
    Image.fromarray(scene["image"]).save(path)
    with browser.DemoServer(model_args) as server, browser.Browser() as chromium:
      page = chromium.open(server.url)
      browser.upload(page, path)
      encode = _figures(browser.status(page))["encode_ms"]
      latencies, server_ms, decode_ms = [], [], []
      for i, (y, x, positive) in enumerate(_clicks(scene, args.clicks)):
        browser.set_mode(page, positive)
        latencies.append(browser.click(page, (y, x), hw, i + 1) * 1e3)
        figures = _figures(browser.status(page))
        server_ms.append(figures["server_ms"])
        decode_ms.append(figures["decode_ms"])
  print(json.dumps({
      "model": " ".join(model_args) or "--model ois-tiny-procedural (default)",
      "clicks": args.clicks, "image": f"{hw[1]}x{hw[0]}",
      "click_to_overlay_ms": {"median": float(np.median(latencies)), "min": float(np.min(latencies)),
                              "max": float(np.max(latencies)), "all": [round(v, 1) for v in latencies]},
      "server_ms_median": float(np.median(server_ms)), "decode_ms_median": float(np.median(decode_ms)),
      "encode_ms": encode,
      "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
  }, indent=1))


if __name__ == "__main__":
  main()
