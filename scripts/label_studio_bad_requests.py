"""The bad-request table of the Label Studio backend (docs/label_studio.md): each case sent to
the real app (`ois_jax.label_studio.build_app`, bundled model, FastAPI's test client), its HTTP
status and the message of its JSON body, then one good request to show nothing was left broken.

  python scripts/label_studio_bad_requests.py          # the markdown table
  python scripts/label_studio_bad_requests.py --json   # the rows as JSON

tests/label_studio/test_server.py runs the same cases, checks each status, and checks that the
table in docs/label_studio.md is this script's output.
"""

import argparse
import base64
import io
import json
import socket

import numpy as np
from PIL import Image

from ois_jax.label_studio import backend

MODEL = "ois-tiny-procedural"
CONFIG = backend.EXAMPLE_LABEL_CONFIG


def data_uri(image: np.ndarray | Image.Image, fmt: str = "PNG") -> str:
  img = image if isinstance(image, Image.Image) else Image.fromarray(image)
  buffer = io.BytesIO()
  img.save(buffer, format=fmt)
  return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def keypoint(x: float, y: float, positive: bool = True, label: str = "Object") -> dict:
  return {"type": "keypointlabels", "from_name": "click", "to_name": "image", "is_positive": positive,
          "original_width": 160, "original_height": 120, "value": {"x": x, "y": y, "keypointlabels": [label]}}


def request(task_id=1, image=None, context=(keypoint(50, 50),), config=CONFIG, **task) -> dict:
  data = {} if image is None else {"image": image}
  return {"tasks": [{"id": task_id, "data": data, **task}], "label_config": config,
          "project": "1.1700000000", "params": {"context": {"result": list(context)} if context else None}}


def closed_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def cases(scene: np.ndarray):
  """(case, body: dict or raw bytes, expected status) in table order."""
  good = data_uri(scene)
  huge = data_uri(Image.new("1", (9000, 5000)))  # 45 megapixels, a few kB of PNG
  box = {"type": "rectanglelabels", "value": {"x": 10, "y": 10, "width": 20, "height": 20,
                                               "rectanglelabels": ["Object"]}}
  no_brush = CONFIG.replace("BrushLabels", "PolygonLabels")
  return [
      ("body is not JSON", b"{tasks: 1", 400),
      ("no tasks", {"tasks": [], "label_config": CONFIG}, 400),
      ("no context (no clicks)", request(image=good, context=()), 400),
      ("unknown label config (no BrushLabels)", request(image=good, config=no_brush), 422),
      ("label config is not XML", request(image=good, config="<View><Image"), 422),
      ("a box instead of keypoints", request(image=good, context=(box,)), 422),
      ("keypoint outside the image", request(image=good, context=(keypoint(50, 130),)), 422),
      ("keypoint label not among the brush labels",
       request(image=good, context=(keypoint(50, 50, label="Other"),)), 422),
      ("task the backend never saw (no image in it)", request(task_id=999), 404),
      ("image cannot be fetched (server down)", request(task_id=2, image="/data/upload/1/a.png"), 422),
      ("image cannot be decoded", request(task_id=3, image="data:image/png;base64,"
                                          + base64.b64encode(b"not an image").decode()), 422),
      ("image on a host that is not allowed", request(task_id=4, image="https://example.com/a.png"), 403),
      ("huge image (45 megapixels)", request(task_id=5, image=huge), 413),
  ]


def run(client, scene: np.ndarray) -> list[dict]:
  """Sends every case, then a good click; rows of case, expected, status, message."""
  rows = []
  for case, body, expected in cases(scene):
    if isinstance(body, bytes):
      response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    else:
      response = client.post("/predict", json=body)
    rows.append({"case": case, "expected": expected, "status": response.status_code,
                 "message": response.json().get("error")})
  response = client.post("/predict", json=request(image=data_uri(scene)))
  rows.append({"case": "then a good click", "expected": 200, "status": response.status_code,
               "message": f"{len(response.json()['results'][0]['result'])} brushlabels region"})
  return rows


def table(rows: list[dict]) -> str:
  lines = ["| case | status | message |", "|---|---|---|"]
  lines += [f"| {r['case']} | {r['status']} | {r['message']} |" for r in rows]
  return "\n".join(lines)


def make_client():
  """(test client of the app with the bundled model, a procedural scene); images from Label Studio
  go to a loopback port nothing listens on."""
  from fastapi.testclient import TestClient

  from ois_jax import Predictor, label_studio
  from ois_jax.data_pipelines.procedural import ProceduralScenes
  predictor = Predictor.from_pretrained(MODEL)
  app, backend = label_studio.build_app(predictor, label_studio_url=f"http://127.0.0.1:{closed_port()}",
                                        api_key="unused")
  scene = ProceduralScenes(1, split="val")[0]["image"]
  return TestClient(app), backend, scene


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  client, _, scene = make_client()
  rows = run(client, scene)
  print(json.dumps(rows, indent=2) if args.json else table(rows))


if __name__ == "__main__":
  main()
