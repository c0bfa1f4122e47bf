"""Starting and stopping the backend's HTTP server (uvicorn): in the foreground for the CLI, on
a thread for tests and benchmarks."""

import socket
import threading
import time
import urllib.request

from ois_jax.errors import OISError


class ServerError(OISError, OSError):
  """A server that did not start or stopped answering."""


def serve(app, host: str, port: int) -> None:
  """Serve until Ctrl-C / SIGTERM (uvicorn's own signal handling)."""
  import uvicorn
  uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class ThreadServer:
  """uvicorn on a daemon thread: `with ThreadServer(app) as server: server.url`."""

  def __init__(self, app, host: str = "127.0.0.1", port: int = 0, startup_s: float = 60.0):
    import uvicorn
    if port == 0:
      port = free_port()
    self.url = f"http://{host}:{port}"
    self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                access_log=False))
    self.server.install_signal_handlers = lambda: None  # not the main thread
    self.startup_s = startup_s
    self.thread = threading.Thread(target=self.server.run, daemon=True)

  def __enter__(self):
    self.thread.start()
    deadline = time.monotonic() + self.startup_s
    while time.monotonic() < deadline:
      if self.server.started:
        return self
      if not self.thread.is_alive():
        raise ServerError(f"the backend server on {self.url} stopped while starting")
      time.sleep(0.05)
    self.__exit__()
    raise ServerError(f"the backend server on {self.url} did not start within {self.startup_s:.0f} s")

  def __exit__(self, *exc):
    self.server.should_exit = True
    self.thread.join(timeout=30)
    return False


def free_port() -> int:
  """A TCP port of 127.0.0.1 that is free now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def wait_healthy(url: str, timeout_s: float, process=None) -> dict:
  """Poll URL/health until it answers 200; raises OISError on timeout or when `process` exits."""
  import json
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if process is not None and process.poll() is not None:
      raise ServerError(f"the server process exited with code {process.returncode}")
    try:
      with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as response:
        return json.loads(response.read())
    except OSError:
      time.sleep(0.3)
  raise ServerError(f"{url} did not answer /health within {timeout_s:.0f} s")
