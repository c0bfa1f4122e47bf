"""Persistent XLA compilation cache, and messages that say when a program compiles.

Compiling the OIS encoder and decoder takes most of a short command's time (about 20 s of the
25 s of one `ois-jax segment` click with the tiny config on 2 CPU cores). JAX can keep compiled
programs on disk; `enable()` points it at a folder so the next run loads them instead:

  default       $XDG_CACHE_HOME/ois-jax/xla, else ~/.cache/ois-jax/xla
  environment   OIS_JAX_COMPILATION_CACHE=DIR moves it; OIS_JAX_COMPILATION_CACHE=off turns it off
  command line  ois-jax --compilation-cache DIR ... / ois-jax --no-compilation-cache ...

The `ois-jax` dispatcher and `Predictor` call `enable()`. A folder set through JAX itself
(JAX_COMPILATION_CACHE_DIR or jax.config) is left as it is. The cache is keyed by the program,
the JAX version and the device, so a stale entry is never used; at most `MAX_SIZE_BYTES` are
kept (least recently used entries go first). Nothing here ever fails a command: a folder that
cannot be created, or is not writable, turns the cache off with one warning.

`announce(what, log)` wraps a first call: it logs "compiling WHAT, first use" before and, after,
how long it took and whether the cache served it. Compilations nobody announced that take over
`REPORT_AFTER_S` are logged once they finish (`report_unannounced`), so a silent 20 s is never a
mystery.
"""

import contextlib
import logging
import os
import sys
import threading
import time

ENV_VAR = "OIS_JAX_COMPILATION_CACHE"
OFF_VALUES = ("", "0", "off", "false", "no", "none")
# Programs that compile faster than this are not written (JAX's default is 1 s): the tiny
# config's decoder compiles in ~0.5 s on 2 cores, and a warm start wants every piece.
MIN_COMPILE_TIME_S = 0.2
MAX_SIZE_BYTES = 4 << 30
REPORT_AFTER_S = 2.0

log = logging.getLogger("ois_jax.compilation_cache")
_lock = threading.Lock()
_state = {"configured": False, "dir": None, "listening": False, "report": False}
_counts = {"hits": 0, "compiles": 0}
_announced = threading.local()


def default_dir() -> str:
  """$XDG_CACHE_HOME/ois-jax/xla, else ~/.cache/ois-jax/xla."""
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(root, "ois-jax", "xla")


def resolve(setting: str | None = None) -> str | None:
  """The cache folder for `setting` (a folder, or "off"), else $OIS_JAX_COMPILATION_CACHE, else
  the default. None means off."""
  if setting is None:
    setting = os.environ.get(ENV_VAR)
    if setting is None:
      return default_dir()
  if setting.strip().lower() in OFF_VALUES:
    return None
  return os.path.abspath(os.path.expanduser(setting))


def current_dir() -> str | None:
  """The folder JAX's persistent cache writes to, or None when it is off."""
  if "jax" in sys.modules:
    import jax
    return jax.config.jax_compilation_cache_dir
  return _state["dir"] or os.environ.get("JAX_COMPILATION_CACHE_DIR")


def enable(setting: str | None = None, force: bool = False) -> str | None:
  """Turn the persistent cache on (see the module docstring); returns its folder or None (off).

  Once per process: later calls return the folder chosen first, unless `force` (the CLI flag).
  Cheap when JAX is not imported yet: the choice goes through JAX's environment variables.
  """
  with _lock:
    if _state["configured"] and not force:
      return _state["dir"]
    _state["configured"] = True
    if not force and _set_through_jax():
      _state["dir"] = current_dir()
      return _state["dir"]
    path = resolve(setting)
    if path is not None:
      try:
        os.makedirs(path, exist_ok=True)
      except OSError as e:
        log.warning("compilation cache off: cannot create %s (%s)", path, e)
        path = None
      if path is not None and not os.access(path, os.W_OK | os.X_OK):
        # JAX would warn at every compile that it cannot write, while nothing is kept.
        log.warning("compilation cache off: %s is not writable", path)
        path = None
    _state["dir"] = path
    _apply(path)
    return path


def _set_through_jax() -> bool:
  """True when the user chose a folder through JAX itself (not through this module)."""
  if "jax" in sys.modules:
    import jax
    return jax.config.jax_compilation_cache_dir is not None
  return "JAX_COMPILATION_CACHE_DIR" in os.environ


def _apply(path: str | None) -> None:
  settings = {"jax_compilation_cache_dir": path,
              "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_TIME_S,
              "jax_compilation_cache_max_size": MAX_SIZE_BYTES}
  if "jax" not in sys.modules:
    # JAX reads these when it is imported; importing it here would cost every command ~0.5 s.
    for name, value in settings.items():
      if value is None:
        os.environ.pop(name.upper(), None)
      else:
        os.environ[name.upper()] = str(value)
    return
  import jax
  from jax.experimental.compilation_cache import compilation_cache as cc
  for name, value in settings.items():
    jax.config.update(name, value)
  # JAX decides once per process whether the cache is used, at the first compilation; start
  # over so that a compilation before this call does not leave it off.
  cc.reset_cache()


# --- messages ---------------------------------------------------------------------------
def _listen() -> None:
  """Count cache hits and compilations through jax.monitoring (registered once)."""
  with _lock:
    if _state["listening"]:
      return
    _state["listening"] = True
  import jax

  def on_event(event, **kwargs):
    if event == "/jax/compilation_cache/cache_hits":
      _counts["hits"] += 1

  def on_duration(event, duration, **kwargs):
    if event != "/jax/core/compile/backend_compile_duration":
      return
    _counts["compiles"] += 1
    if (_state["report"] and duration >= REPORT_AFTER_S and not getattr(_announced, "depth", 0)):
      log.info("compiled %s in %.1f s (first use)%s", kwargs.get("fun_name", "a program"), duration,
               _cache_note())

  jax.monitoring.register_event_listener(on_event)
  jax.monitoring.register_event_duration_secs_listener(on_duration)


def report_unannounced(on: bool = True) -> None:
  """Log every compilation over REPORT_AFTER_S that no `announce` block covers (the CLI)."""
  _state["report"] = on
  if on:
    _listen()


def _cache_note() -> str:
  folder = current_dir()
  return f"; kept in the compilation cache {folder}" if folder else "; the compilation cache is off"


@contextlib.contextmanager
def announce(what: str, logger: logging.Logger):
  """Wrap the first call of a jitted function: "compiling WHAT, first use", then the time taken."""
  _listen()
  logger.info("compiling %s, first use", what)
  hits, compiles = _counts["hits"], _counts["compiles"]
  start = time.perf_counter()
  _announced.depth = getattr(_announced, "depth", 0) + 1
  try:
    yield
  finally:
    _announced.depth -= 1
  elapsed = time.perf_counter() - start
  new_hits, new_compiles = _counts["hits"] - hits, _counts["compiles"] - compiles
  if new_compiles and new_hits >= new_compiles:
    logger.info("%s ready in %.1f s (loaded from the compilation cache %s)", what, elapsed, current_dir())
  else:
    logger.info("%s compiled in %.1f s%s", what, elapsed, _cache_note())
