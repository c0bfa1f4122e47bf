"""`ois-jax label-studio` driven by a real Label Studio (tests/label_studio/harness.py).

Label Studio (a pinned version) is installed into its own venv, cached between runs under
~/.cache/ois-jax (or $OIS_LABEL_STUDIO_VENV), so its pins never touch this environment. It is
started on 127.0.0.1 with sqlite in a temporary folder and a generated user and API token; the
backend (the bundled model) runs as `ois-jax label-studio` on another loopback port. Through
Label Studio's HTTP API, as its frontend does: a project with the interactive label config, two
GrabCut images imported as uploads, the backend connected with interactive preannotations on,
then a positive and a negative smart keypoint through /api/ml/{id}/interactive-annotating. The
brushlabels region that comes back, decoded by Label Studio's own decoder, must equal the
Predictor's mask for the same clicks on the same image, and the second click must not re-encode.
Two tasks are then annotated in parallel threads with interleaved clicks. With
OIS_LABEL_STUDIO_SCREENSHOT=PATH the labeling page after the two clicks (saved as an
annotation) is photographed in headless Chromium (docs/label_studio.png is made that way).

Under CI=true a failed Label Studio install fails the tests; elsewhere it skips them.
"""

import os
import pathlib
import threading
import time

import numpy as np
import pytest
from PIL import Image

import harness  # tests/label_studio/harness.py (on sys.path via tests/conftest.py)
import shared_data
from ois_jax import Predictor
from ois_jax.label_studio import backend, rle

IN_CI = os.environ.get("CI", "").lower() == "true"
MODEL = "ois-tiny-procedural"
REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = backend.EXAMPLE_LABEL_CONFIG
IMAGES = ("106024", "124080", "153077")


@pytest.fixture(scope="module")
def venv():
  try:
    folder, seconds = harness.ensure_venv()
  except Exception as e:  # noqa: BLE001 - reported as the skip / failure reason
    message = f"Label Studio {harness.VERSION} could not be installed: {e}"
    if IN_CI:
      pytest.fail(message)
    pytest.skip(message)
  print(f"Label Studio venv {folder}: " + ("cached" if seconds is None else f"installed in {seconds:.1f} s"))
  return folder


def _interior(region: np.ndarray) -> tuple[int, int]:
  import cv2
  dist = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
  return tuple(int(v) for v in np.unravel_index(np.argmax(dist), dist.shape))


def keypoint(yx, hw, positive: bool) -> dict:
  """A smart keypoint at pixel (y, x) as the frontend sends it: percent of the image, at the
  pixel's centre."""
  (y, x), (h, w) = yx, hw
  return {"type": "keypointlabels", "from_name": "click", "to_name": "image", "origin": "manual",
          "original_width": w, "original_height": h, "image_rotation": 0, "is_positive": positive,
          "value": {"x": (x + 0.5) / w * 100, "y": (y + 0.5) / h * 100, "width": 0.5,
                    "keypointlabels": ["Object"]}}


class Expected:
  """The Predictor's click loop on one image (the reference the backend must equal)."""

  def __init__(self, predictor: Predictor, image: np.ndarray):
    self.predictor, self.image = predictor, image
    self.clicks, self.probs = [], None

  def click(self, yx, positive: bool) -> np.ndarray:
    self.predictor.set_image(self.image)  # the same encoding each time (deterministic)
    self.clicks.append((float(yx[0]), float(yx[1]), positive))
    self.probs = self.predictor.predict(self.clicks, prev_mask=self.probs)
    return self.probs > float(self.predictor.config.eval.threshold)


def region_of(answer: dict, hw) -> dict:
  assert "errors" not in answer, answer
  (region,) = answer["data"]["result"]
  assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == ["Object"]
  assert (region["original_height"], region["original_width"]) == tuple(hw)
  return region


def test_our_rle_is_read_by_label_studios_decoder(venv):
  rng = np.random.default_rng(0)
  for hw in [(1, 1), (3, 5), (37, 53), (321, 481)]:
    block = np.zeros(hw, bool)
    block[hw[0] // 3:, hw[1] // 4:] = True
    for mask in (rng.random(hw) > 0.5, block, np.ones(hw, bool)):
      decoded, values = harness.decode_rle(venv, rle.encode(mask), hw)
      np.testing.assert_array_equal(decoded, mask)
      assert set(values) <= {0, 255}


@pytest.mark.timeout(1800)
def test_clicks_through_label_studio_equal_the_predictor(venv, tmp_path):
  grabcut = pathlib.Path(shared_data.require("GrabCut"))
  paths = [grabcut / "data_GT" / f"{name}.jpg" for name in IMAGES]
  gts = [np.asarray(Image.open(grabcut / "boundary_GT" / f"{name}.bmp")) > 128 for name in IMAGES]
  predictor = Predictor.from_pretrained(MODEL)
  images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]

  start = time.perf_counter()
  with harness.LabelStudio(venv) as ls, harness.Backend(["--model", MODEL], ls) as backend:
    print(f"Label Studio and the backend answered after {time.perf_counter() - start:.1f} s")
    project = ls.create_project("OIS", CONFIG)
    task_ids = ls.upload(project, [str(p) for p in paths])
    for task_id in task_ids:
      assert ls.task(task_id)["data"]["image"].startswith("/data/upload/")
    ml = ls.connect_backend(project, backend.url)

    # One task: a positive keypoint inside the object, then a negative one on its false positives.
    hw = gts[0].shape
    expected = Expected(predictor, images[0])
    positive = _interior(gts[0])
    encodes = backend.health()["encodes"]
    first = region_of(ls.interactive(ml, task_ids[0], [keypoint(positive, hw, True)]), hw)
    mask1, values = ls.decode_rle(first["value"]["rle"], hw)
    assert set(values) <= {0, 255}
    np.testing.assert_array_equal(mask1, expected.click(positive, True))
    assert backend.health()["encodes"] == encodes + 1
    false_positive = mask1 & ~gts[0]
    negative = _interior(false_positive if false_positive.any() else ~gts[0])
    clicks = [keypoint(positive, hw, True), keypoint(negative, hw, False)]
    second = region_of(ls.interactive(ml, task_ids[0], clicks), hw)
    mask2, _ = ls.decode_rle(second["value"]["rle"], hw)
    np.testing.assert_array_equal(mask2, expected.click(negative, False))
    assert backend.health()["encodes"] == encodes + 1, "the second click re-encoded the image"
    print(f"task {task_ids[0]}: {int(mask1.sum())} then {int(mask2.sum())} mask pixels")

    # Saved as an annotation, the labeling page shows the mask.
    ls.save_annotation(task_ids[0], [second])
    shot = os.environ.get("OIS_LABEL_STUDIO_SCREENSHOT")
    if shot:
      harness.screenshot(ls, project, task_ids[0], shot)
      assert Image.open(shot).size[0] > 1000

    # Two tasks in parallel threads, clicks interleaved: each gets its own masks.
    barrier, got, errors = threading.Barrier(2), {}, []
    plans = {}
    for index in (1, 2):
      h, w = gts[index].shape
      plans[index] = [(_interior(gts[index]), True), (_interior(~gts[index]), False)]

    def annotate(index):
      try:
        task_hw = gts[index].shape
        sent, masks = [], []
        for yx, positive in plans[index]:
          sent.append(keypoint(yx, task_hw, positive))
          barrier.wait(timeout=300)
          region = region_of(ls.interactive(ml, task_ids[index], list(sent)), task_hw)
          masks.append(ls.decode_rle(region["value"]["rle"], task_hw)[0])
        got[index] = masks
      except Exception as e:  # noqa: BLE001 - reported below
        errors.append(e)
        barrier.abort()

    threads = [threading.Thread(target=annotate, args=(i,)) for i in (1, 2)]
    for t in threads:
      t.start()
    for t in threads:
      t.join(timeout=900)
    assert not errors, errors
    for index in (1, 2):
      reference = Expected(predictor, images[index])
      for k, (yx, positive) in enumerate(plans[index]):
        np.testing.assert_array_equal(got[index][k], reference.click(yx, positive),
                                      err_msg=f"task {task_ids[index]} click {k + 1}")
    assert backend.health()["encodes"] == encodes + 3
    assert ls.process.poll() is None and backend.process.poll() is None
    pids = (ls.process.pid, backend.process.pid)
  for pid in pids:
    with pytest.raises(ProcessLookupError):
      os.kill(pid, 0)
