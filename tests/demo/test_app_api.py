"""The demo page through its HTTP API (gradio_client), served in this process on a free port:
bad input gets a message and the session goes on, sessions are isolated, one encode per image,
downloads at the image's size."""

import os

import numpy as np
import pytest
from PIL import Image

import ois_testlib as T  # shared tiny model, one per process (tests/conftest.py)
from ois_jax.configs import ois_tiny

try:
  import gradio_client
except ImportError:  # CI installs the demo extra: there a missing gradio fails the run
  if os.environ.get("CI", "").lower() == "true":
    raise
  pytest.skip("needs the demo extra: pip install -e '.[demo]'", allow_module_level=True)
from ois_jax.demo import app as app_lib, engine as engine_lib  # noqa: E402
import browser  # noqa: E402  (tests/demo/browser.py, on sys.path via tests/conftest.py)

OVERLAY, STATUS = 0, 1               # of each action: (overlay, status, depth)
MASK, PROBS, CLICK_CHOICES = 2, 3, 4  # of /views: (order, attention, mask, probs, ...)
SCENE_HW = (120, 160)


@pytest.fixture(scope="module")
def server():
  """(url, engine): the page with the shared tiny model; downscale above 200 px, refuse above
  90,000 pixels (small limits, so that the tests stay small)."""
  _, params = T.full()
  engine = engine_lib.Engine.from_weights(ois_tiny.get_config(), params, "tiny test model")
  page = app_lib.Page(engine, scenes=app_lib.gallery_scenes(2), max_side=200, max_pixels=90_000)
  blocks = page.build()
  port = browser.free_port()
  app_lib.launch(blocks, "127.0.0.1", port, block=False)
  yield f"http://127.0.0.1:{port}/", engine
  blocks.close()


def client(server):
  """A new browser session. /click takes x, y in image pixels (x first, as gradio's events)."""
  return gradio_client.Client(server[0], verbose=False)


def upload(c, path):
  return c.predict(gradio_client.handle_file(str(path)), api_name="/upload")


def views(c):
  """What the page shows after each action: order maps, attention, the downloads, choices."""
  return c.predict(api_name="/views")


@pytest.fixture
def scene_png(tmp_path):
  path = tmp_path / "scene.png"
  Image.fromarray(app_lib.gallery_scenes(1)[0][0]).save(path)
  return path


def test_upload_click_undo_reset_and_downloads(server, scene_png):
  c = client(server)
  out = upload(c, scene_png)
  assert "**scene.png** (160x120)" in out[STATUS] and "clicks: 0 " in out[STATUS]
  assert np.asarray(Image.open(out[OVERLAY])).shape[:2] == (360, 480)  # shown at 480 px
  out = c.predict(80, 60, "positive", api_name="/click")
  assert "clicks: 1 (1 positive, 0 negative)" in out[STATUS] and "decode" in out[STATUS]
  shown = views(c)
  assert shown[MASK].endswith("scene_1clicks_mask.png")
  first_mask = np.asarray(Image.open(shown[MASK]))
  assert first_mask.shape == SCENE_HW and set(np.unique(first_mask)) <= {0, 255}
  probs = np.load(shown[PROBS])
  assert probs.shape == SCENE_HW and probs.dtype == np.float32
  np.testing.assert_array_equal(first_mask > 0, probs > ois_tiny.get_config().eval.threshold)
  out = c.predict(150, 10, "negative", api_name="/click")
  assert "clicks: 2 (1 positive, 1 negative)" in out[STATUS]
  shown = views(c)
  assert shown[CLICK_CHOICES]["value"] == "2 (-)"
  attention = np.asarray(Image.open(shown[1]))
  other = np.asarray(Image.open(c.predict("1 (+)", "block 2", api_name="/attention")))  # no decode
  assert other.shape == attention.shape and (other != attention).any()
  out = c.predict(api_name="/undo")
  assert "clicks: 1 " in out[STATUS]
  np.testing.assert_array_equal(np.asarray(Image.open(views(c)[MASK])), first_mask)
  out = c.predict(api_name="/reset")
  assert "clicks: 0 " in out[STATUS] and views(c)[MASK] is None
  assert "nothing to undo" in c.predict(api_name="/undo")[STATUS]


def test_one_encode_per_image_however_many_clicks(server, scene_png):
  c, engine = client(server), server[1]
  before = engine.encodes
  upload(c, scene_png)
  for i in range(4):
    c.predict(30 + 10 * i, 40 + 5 * i, "positive" if i % 2 == 0 else "negative", api_name="/click")
  c.predict(api_name="/undo")
  c.predict(50, 50, "positive", api_name="/click")
  assert engine.encodes - before == 1
  c.predict(1, api_name="/scene")
  assert engine.encodes - before == 2


def test_a_click_before_any_image_gets_a_message(server, scene_png):
  c = client(server)
  out = c.predict(10, 10, "positive", api_name="/click")
  assert "error:** no image yet: upload an image or pick a scene" in out[STATUS]
  assert "clicks: 0 " in upload(c, scene_png)[STATUS]
  out = c.predict(10, 10, "positive", api_name="/click")
  assert "clicks: 1 " in out[STATUS]  # the session works after the error


@pytest.mark.parametrize("content, message", [
    (b"this is a text file, not a picture\n", "not an image file"),
    (None, "corrupt or truncated"),  # a PNG cut in half
])
def test_files_that_are_not_images_get_a_message(server, scene_png, tmp_path, content, message):
  c = client(server)
  upload(c, scene_png)
  c.predict(80, 60, "positive", api_name="/click")
  bad = tmp_path / ("notes.txt" if content else "cut.png")
  bad.write_bytes(content if content else scene_png.read_bytes()[:600])
  out = upload(c, bad)
  assert f"error:** {bad.name}: " in out[STATUS] and message in out[STATUS]
  assert str(tmp_path) not in out[STATUS]  # no server-side paths in the page
  assert "**scene.png**" in out[STATUS] and "clicks: 1 " in out[STATUS]  # the old image stays
  assert "clicks: 2 " in c.predict(20, 20, "negative", api_name="/click")[STATUS]


def test_large_images_are_downscaled_with_a_notice_and_huge_ones_refused(server, tmp_path, scene_png):
  c = client(server)
  wide = tmp_path / "wide.png"
  Image.fromarray(np.full((100, 400, 3), 90, np.uint8)).save(wide)  # 40,000 px, longer side 400
  out = upload(c, wide)
  assert "wide.png is 400x100, larger than the demo's limit of 200 px per side" in out[STATUS]
  assert "**wide.png** (200x50)" in out[STATUS]
  c.predict(100, 25, "positive", api_name="/click")
  assert np.asarray(Image.open(views(c)[MASK])).shape == (50, 200)  # masks at the downscaled size
  huge = tmp_path / "huge.png"
  Image.fromarray(np.zeros((400, 400, 3), np.uint8)).save(huge)  # 160,000 px > 90,000
  out = upload(c, huge)
  assert "error:** huge.png: the image is 400x400" in out[STATUS] and "over the demo's limit" in out[STATUS]
  assert "**wide.png**" in out[STATUS]  # still the previous image


def test_any_image_mode_is_decoded_as_load_image_does(server, tmp_path):
  c = client(server)
  rotated = tmp_path / "rotated.jpg"
  exif = Image.Exif()
  exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
  Image.fromarray(np.full((40, 100, 3), 200, np.uint8)).save(rotated, exif=exif)
  assert "**rotated.jpg** (40x100)" in upload(c, rotated)[STATUS]  # shown upright: 40 wide
  sixteen = tmp_path / "depth16.png"
  Image.fromarray(np.full(SCENE_HW, 65535, np.uint16)).save(sixteen)  # sizes as the scene's: no
  assert "**depth16.png** (160x120)" in upload(c, sixteen)[STATUS]     # new compilation
  rgba = tmp_path / "alpha.png"
  Image.fromarray(np.zeros((*SCENE_HW, 4), np.uint8), "RGBA").save(rgba)
  out = upload(c, rgba)
  assert "**alpha.png** (160x120)" in out[STATUS]
  assert "clicks: 1 " in c.predict(5, 5, "positive", api_name="/click")[STATUS]


def test_the_25th_positive_click_is_refused_with_a_message(server, scene_png):
  c = client(server)
  upload(c, scene_png)
  for i in range(24):
    c.predict(10 + 5 * i, 10 + 4 * i, "positive", api_name="/click")
  out = c.predict(100, 100, "positive", api_name="/click")
  assert "click refused: 25 positive clicks; the model has 24 positive slots" in out[STATUS]
  assert "clicks: 24 " in out[STATUS]
  assert "clicks: 25 (24 positive, 1 negative)" in c.predict(100, 100, "negative",
                                                              api_name="/click")[STATUS]


def test_two_sessions_never_see_each_other(server, scene_png, tmp_path):
  a, b = client(server), client(server)
  upload(a, scene_png)
  a.predict(80, 60, "positive", api_name="/click")
  a_mask = np.asarray(Image.open(views(a)[MASK]))
  assert "no image yet" in b.predict(80, 60, "positive", api_name="/click")[STATUS]
  other = tmp_path / "other.png"
  Image.fromarray(app_lib.gallery_scenes(2)[1][0]).save(other)
  upload(b, other)
  b.predict(30, 30, "positive", api_name="/click")
  b.predict(120, 90, "negative", api_name="/click")
  out = a.predict(api_name="/undo")  # a's history is a's own
  assert "**scene.png**" in out[STATUS] and "clicks: 0 " in out[STATUS]
  a.predict(80, 60, "positive", api_name="/click")
  np.testing.assert_array_equal(np.asarray(Image.open(views(a)[MASK])), a_mask)
  assert "**other.png**" in b.predict(api_name="/reset")[STATUS]


def test_a_gallery_index_that_does_not_exist_gets_a_message(server):
  c = client(server)
  assert "error:** no gallery scene 7" in c.predict(7, api_name="/scene")[STATUS]
  assert "**scene 1** (160x120)" in c.predict(1, api_name="/scene")[STATUS]
