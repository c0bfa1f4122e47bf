"""The demo's /attention endpoint with a click or block label that does not exist: a clear error
for the caller, no traceback on the server."""

import os

import pytest

import ois_testlib as T  # shared tiny model, one per process (tests/conftest.py)
from ois_jax.configs import ois_tiny

try:
  import gradio_client
except ImportError:  # CI installs the demo extra: there a missing gradio fails the run
  if os.environ.get("CI", "").lower() == "true":
    raise
  pytest.skip("needs the demo extra: pip install -e '.[demo]'", allow_module_level=True)
import browser  # noqa: E402  (tests/demo/browser.py, on sys.path via tests/conftest.py)
from ois_jax.demo import app as app_lib, engine as engine_lib  # noqa: E402


@pytest.fixture(scope="module")
def server():
  _, params = T.full()
  engine = engine_lib.Engine.from_weights(ois_tiny.get_config(), params, "tiny test model")
  blocks = app_lib.Page(engine, scenes=app_lib.gallery_scenes(1)).build()
  port = browser.free_port()
  app_lib.launch(blocks, "127.0.0.1", port, block=False)
  yield f"http://127.0.0.1:{port}/"
  blocks.close()


def test_unknown_attention_labels_are_clear_errors(server, capfd):
  c = gradio_client.Client(server, verbose=False)
  c.predict(0, api_name="/scene")
  c.predict(20, 30, "positive", api_name="/click")
  assert c.predict("1 (+)", "block 1", api_name="/attention")  # the known ones draw a picture
  capfd.readouterr()
  for click, block, needle in (("9 (+)", "block 1", "no click '9 (+)': choose one of 1 (+)"),
                               ("1 (+)", "block 99", "no block 'block 99': choose one of block 1"),
                               ("banana", "block 1", "no click 'banana'")):
    with pytest.raises(Exception) as info:
      c.predict(click, block, api_name="/attention")
    assert needle in str(info.value)
  assert "Traceback" not in capfd.readouterr().err
