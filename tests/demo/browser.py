"""Test harness: drive the demo page in a real headless browser, the system's Chromium through
Playwright (no browser is downloaded). The browser test (test_browser.py), the screenshot in
docs/demo.png and the latency benchmark (benchmarks/demo_latency.py) all go through here.

    with DemoServer(["--model", "ois-tiny-procedural"]) as server, Browser() as browser:
      page = browser.open(server.url)
      upload(page, "scene.png")
      click(page, (y, x), image_hw)          # waits until the overlay shows the new mask
      mask = download_mask(page, 1)          # (H, W) bool, from the page's mask PNG link
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from ois_jax.demo import render
from ois_jax.errors import OISError

# Flags that run Chromium headless in a container with no network but the loopback.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1360, "height": 1250}
TIMEOUT_MS = 120_000  # one page action on a loaded 2-core machine; the first click may compile


def find_chromium() -> str | None:
  """The system's Chromium ($OIS_CHROMIUM, else chromium / chromium-browser on PATH)."""
  for candidate in (os.environ.get("OIS_CHROMIUM"), "chromium", "chromium-browser"):
    if candidate and shutil.which(candidate):
      return shutil.which(candidate)
  return None


def free_port() -> int:
  """A TCP port of 127.0.0.1 that is free now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


class DemoServer:
  """`ois-jax demo ARGS --port FREE` in a subprocess, ready once it prints its URL."""

  def __init__(self, args: list[str], startup_s: float = 600.0, env: dict | None = None):
    self.port = free_port()
    self.url = f"http://127.0.0.1:{self.port}/"
    self.args = [sys.executable, "-m", "ois_jax", "demo", *args, "--port", str(self.port)]
    self.startup_s = startup_s
    self.env = dict(os.environ, **(env or {}))
    self.log_path = None
    self.process = None

  def __enter__(self):
    log = tempfile.NamedTemporaryFile("w+", prefix="ois-demo-server-", suffix=".log", delete=False)
    self.log_path = log.name
    self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
    deadline = time.monotonic() + self.startup_s
    while time.monotonic() < deadline:
      if self.process.poll() is not None:
        raise OISError(f"ois-jax demo exited with code {self.process.returncode}:\n{self.log()}")
      if "serving http" in self.log() and _accepts(self.port):
        return self
      time.sleep(0.5)
    self.__exit__(None, None, None)
    raise OISError(f"ois-jax demo did not start within {self.startup_s:.0f} s:\n{self.log()}")

  def log(self) -> str:
    with open(self.log_path) as f:
      return f.read()

  def __exit__(self, *exc):
    if self.process is not None and self.process.poll() is None:
      self.process.terminate()
      try:
        self.process.wait(timeout=30)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    return False


def _accepts(port: int) -> bool:
  try:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
      return True
  except OSError:
    return False


class Browser:
  """Headless Chromium; `open(url)` gives a page in a new, isolated browser context (its own
  cookies and storage: another browser session). Requests that leave 127.0.0.1 are recorded in
  `outside_requests` (there must be none) and aborted."""

  def __init__(self, executable: str | None = None):
    self.executable = executable or find_chromium()
    if self.executable is None:
      raise OISError("no Chromium found: apt-get install chromium (or set OIS_CHROMIUM)")
    self.outside_requests: list[str] = []

  def __enter__(self):
    from playwright.sync_api import sync_playwright
    self._playwright = sync_playwright().start()
    self.browser = self._playwright.chromium.launch(executable_path=self.executable, args=CHROMIUM_FLAGS)
    return self

  def __exit__(self, *exc):
    self.browser.close()
    self._playwright.stop()
    return False

  def open(self, url: str):
    context = self.browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", self._route)
    page = context.new_page()
    page.goto(url)
    wait_ready(page)
    return page

  def _route(self, route):
    host = route.request.url.split("/")[2] if "://" in route.request.url else ""
    if host.split(":")[0] in ("127.0.0.1", "localhost") or route.request.url.startswith("data:"):
      route.continue_()
    else:
      self.outside_requests.append(route.request.url)
      route.abort()


def wait_ready(page) -> None:
  """Until the page has loaded and its session has answered (the status names the model)."""
  page.wait_for_function("(document.querySelector('#ois-status') || {innerText: ''})"
                         ".innerText.includes('model:')")


def reload(page) -> None:
  """Reload the page: a new browser session, with nothing of the old one."""
  page.reload()
  wait_ready(page)


def status(page) -> str:
  return page.inner_text("#ois-status")


def _overlay_src(page) -> str:
  return page.eval_on_selector("#ois-image", "e => (e.querySelector('img') || {}).src || ''")


def _wait_for_status(page, text: str, old_src: str | None = None) -> None:
  """Until the status box says `text` and, when old_src is given, the overlay shows a new
  picture, loaded."""
  page.wait_for_function(
      """([text, old]) => {
        const box = document.querySelector('#ois-status');
        if (!box || !box.innerText.includes(text)) return false;
        if (old === null) return true;
        const img = document.querySelector('#ois-image img');
        return img && img.src !== old && img.complete && img.naturalWidth > 0;
      }""", arg=[text, old_src])


def upload(page, path: str) -> None:
  """Upload an image file through the page's upload button; waits for the encoded image."""
  old = _overlay_src(page)
  page.set_input_files("input[data-testid='Upload an image-upload-button']", path)
  name = os.path.basename(path)
  page.wait_for_function(
      """([name, old]) => {
        const text = document.querySelector('#ois-status').innerText;
        if (text.includes('error:')) return true;
        const img = document.querySelector('#ois-image img');
        return text.includes(name) && img && img.src !== old && img.complete;
      }""", arg=[name, old])


def pick_scene(page, index: int) -> None:
  """Pick gallery scene `index`; waits for the encoded scene."""
  old = _overlay_src(page)
  page.locator("#ois-gallery .thumbnail-item").nth(index).click()
  page.wait_for_function(
      """([caption, old]) => {
        const img = document.querySelector('#ois-image img');
        return document.querySelector('#ois-status').innerText.includes(caption) && img &&
          img.src !== old && img.complete;
      }""", arg=[f"scene {index}", old])


def set_mode(page, positive: bool) -> None:
  page.locator("#ois-mode label", has_text="positive" if positive else "negative").click()


def image_point(page, yx, image_hw) -> tuple[float, float]:
  """Page coordinates of image pixel (y, x) on the shown picture (gradio letterboxes the picture
  and never upscales it past its own size)."""
  box, natural = page.eval_on_selector(
      "#ois-image img", "e => [e.getBoundingClientRect().toJSON(), [e.naturalWidth, e.naturalHeight]]")
  nw, nh = natural
  scale = min(box["width"] / nw, box["height"] / nh, 1.0)
  left = box["x"] + (box["width"] - nw * scale) / 2
  top = box["y"] + (box["height"] - nh * scale) / 2
  sh, sw = render.display_size(image_hw)
  assert (sh, sw) == (nh, nw), f"the page shows {nw}x{nh}, expected {sw}x{sh}"
  y, x = yx
  # The shown pixel whose centre is nearest to the image pixel's centre.
  px = round((x + 0.5) * sw / image_hw[1] - 0.5)
  py = round((y + 0.5) * sh / image_hw[0] - 0.5)
  return left + (px + 0.5) * scale, top + (py + 0.5) * scale


def shown_click(yx, image_hw) -> tuple[float, float]:
  """The image pixel the server receives for a click aimed at image pixel (y, x)."""
  sh, sw = render.display_size(image_hw)
  px = round((yx[1] + 0.5) * sw / image_hw[1] - 0.5)
  py = round((yx[0] + 0.5) * sh / image_hw[0] - 0.5)
  return render.to_image_coords(px, py, image_hw, (sh, sw))


def click(page, yx, image_hw, count: int, right: bool = False) -> float:
  """Click image pixel (y, x) (left: the page's mode; right: negative) and wait until the overlay
  shows the mask of `count` clicks. Returns the seconds from the click to the new overlay."""
  old = _overlay_src(page)
  x, y = image_point(page, yx, image_hw)
  start = time.perf_counter()
  page.mouse.click(x, y, button="right" if right else "left")
  _wait_for_status(page, f"clicks: {count} ", old)
  return time.perf_counter() - start


def undo(page, count: int) -> None:
  old = _overlay_src(page)
  page.click("#ois-undo")
  _wait_for_status(page, f"clicks: {count} ", old)


def _download(page, selector: str, suffix: str) -> bytes:
  """Click the download link of `selector` once it offers the file ending in `suffix`."""
  link = page.locator(f"{selector} a[download$='{suffix}']")
  link.wait_for()
  with page.expect_download() as info:
    link.click()
  with open(info.value.path(), "rb") as f:
    return f.read()


def download_mask(page, count: int) -> np.ndarray:
  """The page's mask PNG of `count` clicks, downloaded as a user would: (H, W) bool."""
  import io

  from PIL import Image
  data = _download(page, "#ois-mask-file", f"_{count}clicks_mask.png")
  values = np.asarray(Image.open(io.BytesIO(data)))
  if not set(np.unique(values)) <= {0, 255}:
    raise AssertionError(f"the mask PNG holds values other than 0 and 255: {np.unique(values)[:10]}")
  return values > 0


def download_probs(page, count: int) -> np.ndarray:
  import io
  return np.load(io.BytesIO(_download(page, "#ois-probs-file", f"_{count}clicks_probs.npy")))


def screenshot(page, path: str) -> None:
  """The page from its title to the download links, as a PNG."""
  top = page.locator("h2").first.bounding_box()
  bottom = page.locator("#ois-mask-file").bounding_box()
  clip = {"x": 0, "y": max(0, top["y"] - 12), "width": VIEWPORT["width"],
          "height": bottom["y"] + bottom["height"] + 12 - max(0, top["y"] - 12)}
  page.screenshot(path=path, clip=clip, full_page=True)
