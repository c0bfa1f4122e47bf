"""`ois-jax label-studio [--model NAME | --checkpoint DIR] [--host 127.0.0.1] [--port 9090]
[--label-studio-url URL --api-key KEY]`

Serves OIS as a Label Studio ML backend: smart keypoints in, one brush mask out, each task's
image encoded once. Uploaded images are fetched from the Label Studio server with its API token
($LABEL_STUDIO_URL / $LABEL_STUDIO_API_KEY when the options are not given). Without a model
option it uses the bundled model ois-tiny-procedural. Needs the `label-studio` extra:
pip install 'ois-jax[label-studio]'.
"""

import argparse

from ois_jax import config as config_lib
from ois_jax.cli import _common
from ois_jax.errors import ConfigError, OISError

DEFAULT_MODEL = "ois-tiny-procedural"


def build_parser() -> argparse.ArgumentParser:
  from ois_jax.label_studio import backend, images
  parser = argparse.ArgumentParser(prog="ois-jax label-studio", description=__doc__.split("\n\n")[1])
  _common.add_model_arguments(parser)
  parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
  parser.add_argument("--port", type=int, default=9090)
  parser.add_argument("--label-studio-url", help=f"the Label Studio server (else ${images.URL_ENV})")
  parser.add_argument("--api-key", help=f"its API token (else ${images.KEY_ENV})")
  parser.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                      help="fetch http(s) images from HOST too (repeatable)")
  parser.add_argument("--local-files-root", help="read /data/local-files/?d= paths from this folder "
                      f"(else ${images.ROOT_ENV}; else through the server)")
  parser.add_argument("--cache-entries", type=int, default=backend.CACHE_ENTRIES,
                      help="encoded images kept (one per task)")
  parser.add_argument("--cache-mb", type=int, default=backend.CACHE_BYTES // 2**20,
                      help="bytes of encoded images kept, in MiB")
  parser.add_argument("--max-megapixels", type=float, default=images.MAX_PIXELS / 1e6,
                      help="larger images are refused")
  parser.add_argument("--seed", type=int, default=None, help="random init seed (--config only)")
  return parser


def main(argv=None) -> int:
  args = config_lib.parse_with_overrides(build_parser(), argv)
  if not 0 < args.port < 65536:
    raise ConfigError(f"--port {args.port}: not a TCP port (1-65535)")
  _common.check_seed_source(args)
  for name in ("cache_entries", "cache_mb", "max_megapixels"):
    if not getattr(args, name) > 0:
      raise ConfigError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be positive")
  try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
  except ImportError:
    raise OISError("the Label Studio backend needs FastAPI and uvicorn: pip install "
                   "'ois-jax[label-studio]'") from None
  if not (args.config or args.checkpoint or args.model):
    args.model = DEFAULT_MODEL
  from ois_jax import label_studio
  from ois_jax.predictor import Predictor
  config, params, source = _common.load_model(args)
  predictor = Predictor.from_config(config, params=params, seed=args.seed or 0)
  predictor.source = source
  label_studio.run(predictor, host=args.host, port=args.port, label_studio_url=args.label_studio_url,
                   api_key=args.api_key, allowed_hosts=args.allow_host,
                   local_files_root=args.local_files_root, max_pixels=int(args.max_megapixels * 1e6),
                   cache_entries=args.cache_entries, cache_bytes=args.cache_mb * 2**20)
  return 0
