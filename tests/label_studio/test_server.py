"""The Label Studio backend without Label Studio: the brush RLE, the protocol through the real
app (FastAPI's test client, and uvicorn on a loopback port for concurrency), bad requests, the
per-task cache and image fetching. Label Studio itself drives it in test_real_label_studio.py."""

import http.server
import importlib.util
import io
import json
import pathlib
import threading
import urllib.request

import numpy as np
import pytest
from PIL import Image

from ois_jax import Predictor, label_studio
from ois_jax.data_pipelines.procedural import ProceduralScenes
from ois_jax.label_studio import rle, servers
from ois_jax.label_studio.images import ImageFetchError, ImageSource

REPO = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ls_cases", REPO / "scripts" / "label_studio_bad_requests.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)


@pytest.fixture(scope="module")
def predictor():
  return Predictor.from_pretrained(cases.MODEL)


@pytest.fixture(scope="module")
def scenes():
  return [s["image"] for s in ProceduralScenes(3, split="val")]


def reference_masks(predictor, image, points):
  """The Predictor's masks after each of `points` [(x %, y %, positive)], as a click loop."""
  predictor.set_image(image)
  h, w = image.shape[:2]
  clicks = [(min(max(y / 100 * h - 0.5, 0), h - 1), min(max(x / 100 * w - 0.5, 0), w - 1), p)
            for x, y, p in points]
  masks, probs = [], None
  for k in range(1, len(clicks) + 1):
    probs = predictor.predict(clicks[:k], prev_mask=probs)
    masks.append(probs > float(predictor.config.eval.threshold))
  return masks


def region_mask(answer: dict) -> np.ndarray:
  (prediction,) = answer["results"]
  (region,) = prediction["result"]
  assert region["type"] == "brushlabels" and region["value"]["format"] == "rle"
  return rle.decode(region["value"]["rle"], (region["original_height"], region["original_width"]))


# --- RLE -----------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (37, 53), (300, 400)])
def test_rle_round_trip(hw):
  rng = np.random.default_rng(hw[0])
  block = np.zeros(hw, bool)
  block[hw[0] // 3:, hw[1] // 4:] = True
  for mask in (rng.random(hw) > 0.5, block, np.zeros(hw, bool), np.ones(hw, bool)):
    np.testing.assert_array_equal(rle.decode(rle.encode(mask), hw), mask)


def test_rle_header_and_a_literal_chunk():
  data = rle.encode(np.ones((1, 1), bool))
  # 4 values, word size 8, fields 3/4/8/16; one repeat chunk of 4 values of 255.
  bits = "".join(f"{b:08b}" for b in data)
  assert bits.startswith(f"{4:032b}{7:05b}{2:04b}{3:04b}{7:04b}{15:04b}" + "1" + "00" + "011" + "11111111")
  # A literal chunk (repeat flag 0) of two values, as other encoders write it, decodes too.
  literal = f"{8:032b}{7:05b}{2:04b}{3:04b}{7:04b}{15:04b}" + "0" + "00" + "001" + "0" * 8 + "1" * 8
  literal += "1" + "00" + "101" + "0" * 8
  literal += "0" * (-len(literal) % 8)
  values = [int(literal[i:i + 8], 2) for i in range(0, len(literal), 8)]
  np.testing.assert_array_equal(rle.decode(values, (1, 2)), [[False, False]])
  with pytest.raises(ValueError, match="values"):
    rle.decode(data, (2, 2))


# --- the protocol ----------------------------------------------------------------------------
def test_label_configs():
  from ois_jax.label_studio.backend import BadRequest, LabelConfig
  config = LabelConfig(cases.CONFIG)
  assert (config.image_name, config.image_key, config.brush_name, config.brush_labels) == \
      ("image", "image", "mask", ["Object"])
  smart_on_labels = cases.CONFIG.replace('name="click" toName="image" smart="true"', 'name="click" toName="image"')
  assert LabelConfig(smart_on_labels).keypoint_names == {"click"}
  not_smart = smart_on_labels.replace(' smart="true"', "")
  with pytest.raises(BadRequest, match="smart"):
    LabelConfig(not_smart)



def test_positive_then_negative_click_one_encode(predictor, scenes):
  from fastapi.testclient import TestClient
  app, backend = label_studio.build_app(Predictor.from_pretrained(cases.MODEL))
  client = TestClient(app)
  assert client.get("/health").json()["status"] == "UP"
  assert client.post("/setup", json={"project": "1.1", "schema": cases.CONFIG}).status_code == 200
  assert client.post("/webhook", json={"action": "ANNOTATION_CREATED"}).status_code == 200
  image = scenes[0]
  points = [(45.0, 55.0, True), (80.0, 20.0, False)]
  expected = reference_masks(predictor, image, points)
  uri = cases.data_uri(image)
  masks = []
  for k in (1, 2):
    context = [cases.keypoint(x, y, p) for x, y, p in points[:k]]
    response = client.post("/predict", json=cases.request(task_id=7, image=uri, context=context))
    assert response.status_code == 200, response.text
    answer = response.json()
    region = answer["results"][0]["result"][0]
    assert region["value"]["brushlabels"] == ["Object"]
    assert (region["from_name"], region["to_name"]) == ("mask", "image")
    assert (region["original_height"], region["original_width"]) == image.shape[:2]
    masks.append(region_mask(answer))
    assert client.get("/health").json()["encodes"] == 1, "the second click re-encoded the image"
  assert masks[0].any() and (masks[0] != masks[1]).any(), "the negative click changed nothing"
  for got, want in zip(masks, expected):
    np.testing.assert_array_equal(got, want)
  assert backend.health()["decodes"] == 2


def test_bad_requests_answer_4xx_and_the_docs_table_is_current():
  client, backend, scene = cases.make_client()
  rows = cases.run(client, scene)
  for row in rows:
    assert row["status"] == row["expected"], row
    assert row["message"], row
  assert all(400 <= r["status"] < 500 for r in rows[:-1])
  docs = (REPO / "docs" / "label_studio.md").read_text()
  assert cases.table(rows) in docs, "docs/label_studio.md: rerun scripts/label_studio_bad_requests.py"
  assert backend.health()["encodes"] == 1  # only the good image was encoded


def test_two_tasks_in_parallel_threads_get_their_own_masks(predictor, scenes):
  app, backend = label_studio.build_app(Predictor.from_pretrained(cases.MODEL))
  points = {1: [(45.0, 55.0, True), (85.0, 15.0, False)], 2: [(30.0, 60.0, True), (70.0, 30.0, False)]}
  images = {1: scenes[1], 2: scenes[2]}
  expected = {t: reference_masks(predictor, images[t], points[t]) for t in (1, 2)}
  barrier, got, errors = threading.Barrier(2), {1: [], 2: []}, []

  with servers.ThreadServer(app) as server:
    def annotate(task):
      try:
        uri = cases.data_uri(images[task])
        for k in (1, 2):
          barrier.wait(timeout=120)  # both tasks' k-th clicks are in flight together
          body = cases.request(task_id=task, image=uri,
                               context=[cases.keypoint(x, y, p) for x, y, p in points[task][:k]])
          got[task].append(region_mask(_post(server.url + "/predict", body)))
      except Exception as e:  # noqa: BLE001 - reported below
        errors.append(e)
        barrier.abort()

    threads = [threading.Thread(target=annotate, args=(t,)) for t in (1, 2)]
    for t in threads:
      t.start()
    for t in threads:
      t.join(timeout=300)
  assert not errors, errors
  for task in (1, 2):
    for k in range(2):
      np.testing.assert_array_equal(got[task][k], expected[task][k], err_msg=f"task {task} click {k + 1}")
  assert (expected[1][1] != expected[2][1]).any()
  assert backend.health()["encodes"] == 2


def _post(url: str, body: dict) -> dict:
  request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                   headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(request, timeout=120) as response:
    return json.loads(response.read())


def test_cache_is_bounded_in_entries_and_bytes(scenes):
  from fastapi.testclient import TestClient
  app, backend = label_studio.build_app(Predictor.from_pretrained(cases.MODEL), cache_entries=2)
  client = TestClient(app)
  uri = cases.data_uri(scenes[0])
  for task in (1, 2, 3, 1):  # task 1 was evicted by task 3: encoded again
    assert client.post("/predict", json=cases.request(task_id=task, image=uri)).status_code == 200
  health = backend.health()
  assert (health["encodes"], health["cache_entries"]) == (4, 2)
  one_entry = health["cache_bytes"] // 2
  assert client.post("/predict", json=cases.request(task_id=2)).status_code == 404  # evicted, no image
  backend.cache_bytes = one_entry  # the byte bound: only the newest entry fits
  assert client.post("/predict", json=cases.request(task_id=4, image=uri)).status_code == 200
  assert backend.health()["cache_entries"] == 1
  assert client.post("/predict", json=cases.request(task_id=4)).status_code == 200  # cached: no image needed
  assert backend.health()["encodes"] == 5


# --- images ----------------------------------------------------------------------------------
def test_uploads_are_fetched_with_the_token_and_other_hosts_refused(tmp_path, scenes):
  png = io.BytesIO()
  Image.fromarray(scenes[0]).save(png, format="PNG")
  seen = []

  class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
      seen.append((self.path, self.headers.get("Authorization")))
      if not self.path.startswith("/public/") and self.headers.get("Authorization") != "Token secret":
        self.send_response(401)
        self.end_headers()
        return
      self.send_response(200)
      self.end_headers()
      self.wfile.write(png.getvalue())

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    url = f"http://127.0.0.1:{server.server_port}"
    image = ImageSource(label_studio_url=url, api_key="secret").fetch("/data/upload/3/scene.png")
    np.testing.assert_array_equal(image, scenes[0])
    assert seen[-1] == ("/data/upload/3/scene.png", "Token secret")
    np.testing.assert_array_equal(ImageSource(label_studio_url=url, api_key="secret").fetch(
        url + "/data/upload/3/scene.png"), scenes[0])
    with pytest.raises(ImageFetchError, match="HTTP 401.*api-key"):
      ImageSource(label_studio_url=url, api_key="wrong").fetch("/data/upload/3/scene.png")
    with pytest.raises(ImageFetchError, match="not allowed") as refused:
      ImageSource(api_key="secret").fetch(url + "/data/upload/3/scene.png")
    assert refused.value.status == 403
    np.testing.assert_array_equal(ImageSource(allowed_hosts=["127.0.0.1"]).fetch(url + "/public/a.png"),
                                  scenes[0])
    assert seen[-1] == ("/public/a.png", None)  # no token for other hosts
  finally:
    server.shutdown()
    server.server_close()


def test_local_files_data_uris_and_limits(tmp_path, scenes, monkeypatch):
  (tmp_path / "images").mkdir()
  Image.fromarray(scenes[0]).save(tmp_path / "images" / "a.png")
  source = ImageSource(local_files_root=str(tmp_path / "images"))
  np.testing.assert_array_equal(source.fetch("/data/local-files/?d=a.png"), scenes[0])
  with pytest.raises(ImageFetchError, match="not a file under the local-files root"):
    source.fetch("/data/local-files/?d=../images/../../etc/passwd")
  np.testing.assert_array_equal(source.fetch(cases.data_uri(scenes[0])), scenes[0])
  with pytest.raises(ImageFetchError, match="megapixels") as huge:
    ImageSource(max_pixels=1000).fetch(cases.data_uri(scenes[0]))
  assert huge.value.status == 413
  with pytest.raises(ImageFetchError, match="base64"):
    source.fetch("data:image/png;base64,***")
  monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
  with pytest.raises(ImageFetchError, match="URL is unknown.*--label-studio-url"):
    ImageSource().fetch("/data/upload/1/a.png")


def test_cli_refuses_bad_arguments_in_one_line(capsys):
  from ois_jax.cli import main
  assert main(["label-studio", "--port", "70000"]) != 0
  err = capsys.readouterr().err.strip().splitlines()
  assert err == ["ois-jax label-studio: error: --port 70000: not a TCP port (1-65535)"]
  assert main(["label-studio", "--label-studio-url", "ftp://x", "--model", cases.MODEL]) != 0
  assert "expected http://HOST:PORT" in capsys.readouterr().err
