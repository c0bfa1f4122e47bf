"""`ois-jax demo [--checkpoint DIR | --model NAME | --config CFG] [--host 127.0.0.1] [--port 7860]`

Serves the interactive demo in the browser: upload an image (or pick a procedural scene), click
on an object (positive / negative), see the mask, the model's depth, the order maps and the
attention of each click; download the mask PNG and the probabilities. Without a model option it
uses the bundled model ois-tiny-procedural (a model of the procedural scenes, not of photographs).
It binds 127.0.0.1 unless --host says otherwise, is never shared through any outside service and
sends no analytics. Needs the `demo` extra: pip install 'ois-jax[demo]'.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

from ois_jax import config as config_lib
from ois_jax import stopping
from ois_jax.cli import _common
from ois_jax.errors import ConfigError, OISError

DEFAULT_MODEL = "ois-tiny-procedural"


def build_parser() -> argparse.ArgumentParser:
  from ois_jax.demo import engine
  parser = argparse.ArgumentParser(prog="ois-jax demo", description=__doc__.split("\n\n")[1])
  _common.add_model_arguments(parser)
  parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this "
                      "machine only; 0.0.0.0 serves the local network)")
  parser.add_argument("--port", type=int, default=7860)
  parser.add_argument("--max-side", type=int, default=engine.MAX_SIDE,
                      help="images with a longer side are downscaled to it, with a notice")
  parser.add_argument("--seed", type=int, default=None, help="random init seed (--config without "
                      "weights only; default 0)")
  return parser


def main(argv=None) -> int:
  args = config_lib.parse_with_overrides(build_parser(), argv)
  if not 0 < args.port < 65536:
    raise ConfigError(f"--port {args.port}: not a TCP port (1-65535)")
  _common.check_at_least(args.max_side, 14, "--max-side", below="the 14-pixel patch size")
  _common.check_seed_source(args)
  os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported
  # Gradio keeps the uploads in a folder of this process's own, removed on any exit.
  uploads = tempfile.mkdtemp(prefix="ois-demo-uploads-")
  ours = "GRADIO_TEMP_DIR" not in os.environ
  if ours:
    os.environ["GRADIO_TEMP_DIR"] = uploads
  try:
    return _serve(args)
  finally:
    if ours:
      os.environ.pop("GRADIO_TEMP_DIR", None)
    app_lib = sys.modules.get("ois_jax.demo.app")  # imported once gradio is there
    if app_lib is not None:
      app_lib.remove_session_folders()
    shutil.rmtree(uploads, ignore_errors=True)


def _serve(args) -> int:
  try:
    import gradio  # noqa: F401
  except ImportError:
    raise OISError("the demo needs gradio: pip install 'ois-jax[demo]'") from None
  if not (args.config or args.checkpoint or args.model):
    args.model = DEFAULT_MODEL
  from ois_jax.demo import app as app_lib, engine
  config, params, source = _common.load_model(args)
  check_address(args.host, args.port)  # before the model compiles, and before "serving ..."
  demo_engine = engine.Engine.from_weights(config, params, source, seed=args.seed or 0)
  print(f"ois-jax demo: compiling {source} ...", flush=True)
  seconds = demo_engine.warm_up()
  print(f"ois-jax demo: compiled in {seconds:.1f} s", flush=True)
  page = app_lib.Page(demo_engine, max_side=args.max_side).build()
  check_address(args.host, args.port)  # again: the port may have been taken while compiling
  print(f"ois-jax demo: {source}; serving http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
  try:
    app_lib.launch(page, args.host, args.port, block=False)
  except OSError as e:  # taken in the last instant: gradio says "Cannot find empty port"
    raise OISError(f"cannot serve on {args.host}:{args.port} ({e})") from None
  stopping.hint("the uploads and masks of the sessions were removed")
  try:
    while True:  # until Ctrl-C / SIGTERM (ois_jax.stopping), which close the server on the way out
      time.sleep(0.5)
      if stopping.received():  # its exception was swallowed inside a library callback
        raise stopping.Stopped(stopping.received())
  finally:
    page.close()


def check_address(host: str, port: int) -> None:
  """ConfigError unless this machine can listen on host:port now: an address it does not have,
  a name that does not resolve, or a port another program holds are refused in one line."""
  import errno
  import socket
  try:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
  except socket.gaierror as e:
    raise ConfigError(f"--host {host}: not a known address or name ({e.strerror})") from None
  family, kind, proto, _, address = infos[0]
  with socket.socket(family, kind, proto) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
    try:
      probe.bind(address)
    except OSError as e:
      if e.errno == errno.EADDRINUSE:
        raise ConfigError(f"--port {port}: already in use on {host} (another demo or program "
                          "listens there); stop it or pass another --port") from None
      if e.errno == errno.EADDRNOTAVAIL:
        raise ConfigError(f"--host {host}: not an address of this machine; use 127.0.0.1 (this "
                          "machine only) or 0.0.0.0 (every interface)") from None
      raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror})") from None
