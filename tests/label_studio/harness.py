"""A real Label Studio for tests and benchmarks: a pinned version installed into its own venv
(cached between runs), started on a loopback port with sqlite, a generated user and API token,
and driven through its HTTP API as its frontend does; and `ois-jax label-studio` in a subprocess.

    venv = ensure_venv()                                  # installs once; marker written on success
    with LabelStudio(venv) as ls, Backend(["--model", M], ls) as backend:
      project = ls.create_project("OIS", CONFIG)
      task_ids = ls.upload(project, ["a.jpg"])
      ml = ls.connect_backend(project, backend.url)       # interactive preannotations on
      answer = ls.interactive(ml, task_ids[0], [keypoint, ...])

Nothing here reaches beyond 127.0.0.1 except pip, once, for the install; Label Studio's own
version check and analytics are turned off. Processes are stopped by their PIDs and temporary
data is removed on exit.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

from ois_jax.errors import OISError
from ois_jax.label_studio import servers

VERSION = "1.23.2"
VENV_ENV = "OIS_LABEL_STUDIO_VENV"
MARKER = "installed"


def venv_dir() -> str:
  return os.environ.get(VENV_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "ois-jax",
                                                  f"label-studio-{VERSION}")


def ensure_venv(log=print) -> tuple[str, float | None]:
  """(the venv folder, seconds the install took now, or None when it was cached)."""
  folder = venv_dir()
  if os.path.isfile(os.path.join(folder, MARKER)):
    return folder, None
  log(f"installing label-studio=={VERSION} into {folder} ...")
  start = time.perf_counter()
  steps = [[sys.executable, "-m", "venv", "--clear", folder],
           [os.path.join(folder, "bin", "python"), "-m", "pip", "install", "-q", f"label-studio=={VERSION}"]]
  for step in steps:
    result = subprocess.run(step, capture_output=True, text=True)
    if result.returncode != 0:
      tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
      raise OISError(f"{' '.join(step[:4])} failed ({result.returncode}): {' | '.join(tail)}")
  seconds = time.perf_counter() - start
  with open(os.path.join(folder, MARKER), "w") as f:
    f.write(f"{seconds:.1f} s\n")
  return folder, seconds


def _stop(process: subprocess.Popen) -> None:
  if process is not None and process.poll() is None:
    process.terminate()
    try:
      process.wait(timeout=30)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


class LabelStudio:
  """`label-studio start` on 127.0.0.1 with a temporary data folder (sqlite) and a new user."""

  def __init__(self, venv: str, startup_s: float = 600.0):
    self.venv, self.startup_s = venv, startup_s
    self.port = servers.free_port()
    self.url = f"http://127.0.0.1:{self.port}"
    self.email, self.password = "annotator@example.com", secrets.token_hex(8)
    self.token = secrets.token_hex(20)
    self.process = self.folder = None

  def __enter__(self):
    import httpx
    self.folder = tempfile.mkdtemp(prefix="ois-label-studio-")
    data = os.path.join(self.folder, "data")
    env = dict(os.environ, LABEL_STUDIO_USERNAME=self.email, LABEL_STUDIO_PASSWORD=self.password,
               LABEL_STUDIO_USER_TOKEN=self.token, LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
               LABEL_STUDIO_BASE_DATA_DIR=data, LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false",
               ML_BLOCK_LOCAL_IP="false", SSRF_PROTECTION_ENABLED="false", SENTRY_DSN="",
               FRONTEND_SENTRY_DSN="")
    env.pop("LABEL_STUDIO_URL", None)
    self.log_path = os.path.join(self.folder, "label-studio.log")
    with open(self.log_path, "w") as log:
      self.process = subprocess.Popen(
          [os.path.join(self.venv, "bin", "label-studio"), "start", "--no-browser", "--internal-host",
           "127.0.0.1", "--port", str(self.port), "--host", self.url, "--data-dir", data,
           "--username", self.email, "--password", self.password, "--user-token", self.token,
           "--enable-legacy-api-token"], stdout=log, stderr=subprocess.STDOUT, env=env)
    self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Token {self.token}"},
                             timeout=120)
    deadline = time.monotonic() + self.startup_s
    while time.monotonic() < deadline:
      if self.process.poll() is not None:
        self.__exit__()
        raise OISError(f"label-studio exited with code {self.process.returncode}: {self.log()[-2000:]}")
      try:
        if self.http.get("/api/projects").status_code == 200:
          return self
      except httpx.HTTPError:
        pass
      time.sleep(1)
    log_tail = self.log()[-2000:]
    self.__exit__()
    raise OISError(f"label-studio did not answer within {self.startup_s:.0f} s: {log_tail}")

  def log(self) -> str:
    try:
      with open(self.log_path) as f:
        return f.read()
    except OSError:
      return ""

  def __exit__(self, *exc):
    _stop(self.process)
    if getattr(self, "http", None) is not None:
      self.http.close()
    if self.folder:
      shutil.rmtree(self.folder, ignore_errors=True)
    return False

  def api(self, method: str, path: str, **kwargs):
    response = self.http.request(method, path, **kwargs)
    if response.status_code >= 400:
      raise OISError(f"Label Studio {method} {path}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else None

  # --- what the frontend does -----------------------------------------------------------------
  def create_project(self, title: str, label_config: str) -> int:
    return self.api("POST", "/api/projects", json={"title": title, "label_config": label_config})["id"]

  def upload(self, project: int, paths: list[str]) -> list[int]:
    """Import image files as uploads (one task each); the new tasks' ids, in file order."""
    ids = []
    for path in paths:
      with open(path, "rb") as f:
        self.api("POST", f"/api/projects/{project}/import", files={"file": (os.path.basename(path), f)})
      tasks = self.api("GET", "/api/tasks", params={"project": project, "page_size": 1000})
      tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
      ids.append(max(t["id"] for t in tasks))
    return ids

  def task(self, task_id: int) -> dict:
    return self.api("GET", f"/api/tasks/{task_id}")

  def connect_backend(self, project: int, url: str) -> int:
    return self.api("POST", "/api/ml", json={"url": url, "project": project, "title": "OIS",
                                               "is_interactive": True})["id"]

  def interactive(self, ml_backend: int, task_id: int, keypoints: list[dict]) -> dict:
    """POST /api/ml/{id}/interactive-annotating: Label Studio asks the backend's /predict."""
    return self.api("POST", f"/api/ml/{ml_backend}/interactive-annotating",
                    json={"task": task_id, "context": {"result": keypoints}})

  def save_annotation(self, task_id: int, result: list[dict]) -> int:
    return self.api("POST", f"/api/tasks/{task_id}/annotations", json={"result": result})["id"]

  def decode_rle(self, rle: list[int], hw: tuple[int, int]):
    return decode_rle(self.venv, rle, hw)


def decode_rle(venv: str, rle: list[int], hw: tuple[int, int]):
  """Label Studio's own decoder (label_studio_sdk.converter.brush.decode_rle, run in its venv) on
  `rle`: (the (H, W) bool mask of its alpha channel, the distinct values of all four channels)."""
  import numpy as np
  code = ("import json, sys; import numpy as np; from label_studio_sdk.converter.brush import decode_rle; "
          "rle, h, w = json.load(sys.stdin); out = decode_rle(rle).reshape(h, w, 4); "
          "sys.stdout.write(json.dumps({'alpha': (out[..., 3] > 0).astype(int).ravel().tolist(), "
          "'values': sorted(set(np.unique(out).tolist()))}))")
  return _ls_python(venv, code, [list(rle), *hw], np)


def _ls_python(venv, code, payload, np):
  result = subprocess.run([os.path.join(venv, "bin", "python"), "-c", code], input=json.dumps(payload),
                          capture_output=True, text=True)
  if result.returncode != 0:
    raise OISError(f"Label Studio's decoder failed: {result.stderr.strip()[-500:]}")
  out = json.loads(result.stdout)
  h, w = payload[1], payload[2]
  return np.asarray(out["alpha"], bool).reshape(h, w), out["values"]


class Backend:
  """`ois-jax label-studio ARGS` on a free loopback port, images from `label_studio`."""

  def __init__(self, args: list[str], label_studio: LabelStudio | None = None, startup_s: float = 600.0):
    self.port = servers.free_port()
    self.url = f"http://127.0.0.1:{self.port}"
    self.args = [sys.executable, "-m", "ois_jax", "label-studio", *args, "--port", str(self.port)]
    if label_studio is not None:
      self.args += ["--label-studio-url", label_studio.url, "--api-key", label_studio.token]
    self.startup_s = startup_s
    self.process = None

  def __enter__(self):
    self.log_file = tempfile.NamedTemporaryFile("w+", prefix="ois-ls-backend-", suffix=".log", delete=False)
    self.process = subprocess.Popen(self.args, stdout=self.log_file, stderr=subprocess.STDOUT)
    try:
      servers.wait_healthy(self.url, self.startup_s, self.process)
    except OISError as e:
      log = self.log()[-2000:]  # before __exit__ removes the file
      self.__exit__()
      raise OISError(f"{e}: {log}") from None
    return self

  def health(self) -> dict:
    import urllib.request
    with urllib.request.urlopen(self.url + "/health", timeout=10) as response:
      return json.loads(response.read())

  def log(self) -> str:
    with open(self.log_file.name) as f:
      return f.read()

  def __exit__(self, *exc):
    _stop(self.process)
    self.log_file.close()
    os.unlink(self.log_file.name)
    return False


def screenshot(label_studio: LabelStudio, project: int, task_id: int, path: str,
               viewport=(1360, 900), timeout_ms: int = 180_000) -> None:
  """Log in to Label Studio in the system's headless Chromium (Playwright, nothing downloaded),
  open the labeling page of `task_id` and save it as a PNG at `path`. Requests that leave
  127.0.0.1 are aborted."""
  from playwright.sync_api import sync_playwright

  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo"))
  import browser  # tests/demo/browser.py: the demo tests' Chromium finder

  executable = browser.find_chromium()
  if executable is None:
    raise OISError("no Chromium found: apt-get install chromium (or set OIS_CHROMIUM)")

  def local_only(route):
    host = route.request.url.split("/")[2].split(":")[0] if "://" in route.request.url else ""
    if host in ("127.0.0.1", "localhost") or route.request.url.startswith(("data:", "blob:")):
      route.continue_()
    else:
      route.abort()

  with sync_playwright() as playwright:
    chromium = playwright.chromium.launch(executable_path=executable, args=browser.CHROMIUM_FLAGS)
    try:
      context = chromium.new_context(viewport={"width": viewport[0], "height": viewport[1]})
      context.set_default_timeout(timeout_ms)
      context.route("**/*", local_only)
      page = context.new_page()
      page.goto(label_studio.url + "/user/login/")
      page.fill("input[name='email']", label_studio.email)
      page.fill("input[name='password']", label_studio.password)
      page.click("button[type='submit']")
      page.wait_for_url(lambda url: "/user/login" not in url)
      page.goto(f"{label_studio.url}/projects/{project}/data?task={task_id}")
      page.wait_for_selector("canvas")
      page.wait_for_timeout(4000)  # the image and the brush layer finish drawing
      page.screenshot(path=path)
    finally:
      chromium.close()
