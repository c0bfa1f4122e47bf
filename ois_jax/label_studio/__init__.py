"""OIS as the smart tool of Label Studio: an ML backend that answers smart keypoints with a
brush mask (docs/label_studio.md).

    backend.py  the protocol over a Predictor: label config, keypoints -> one brushlabels region,
                per-task encoded images (LRU, bounded in entries and bytes), per-task locks
    images.py   task images as Label Studio serves them (uploads with the API token, local
                storage, allowed http(s) hosts, data URIs), size limits
    rle.py      Label Studio's brush RLE: encode (vectorised) and decode
    server.py   the FastAPI app (/health, /setup, /predict, /webhook)
    servers.py  uvicorn in the foreground (the CLI) or on a thread (tests, benchmarks)

`ois-jax label-studio` is `run(...)`; it needs the `label-studio` extra (FastAPI, uvicorn).
"""


def build_app(predictor, **options):
  """A FastAPI app serving `predictor`; options go to ImageSource (label_studio_url, api_key,
  allowed_hosts, local_files_root, max_pixels) and Backend (cache_entries, cache_bytes)."""
  from ois_jax.label_studio.backend import Backend
  from ois_jax.label_studio.images import ImageSource
  from ois_jax.label_studio.server import create_app
  image_keys = ("label_studio_url", "api_key", "allowed_hosts", "local_files_root", "max_pixels")
  images = ImageSource(**{k: v for k, v in options.items() if k in image_keys})
  backend = Backend(predictor, images, **{k: v for k, v in options.items() if k not in image_keys})
  return create_app(backend), backend


def run(predictor, host: str = "127.0.0.1", port: int = 9090, log=None, **options) -> None:
  """Serve the backend for `predictor` on host:port until stopped (warms the compiled encoder
  and decoder first, so the first click does not wait for them)."""
  import numpy as np

  from ois_jax.label_studio import servers
  log = log or (lambda message: print(message, flush=True))
  app, backend = build_app(predictor, **options)
  log(f"ois-jax label-studio: compiling {predictor.source} ...")
  predictor.set_image(np.zeros((32, 32, 3), np.uint8))
  predictor.predict([(16, 16, True)])
  predictor.reset_image()
  url = backend.images.label_studio_url
  log(f"ois-jax label-studio: {predictor.source}; images from "
      f"{url or 'data URIs and allowed hosts only (no --label-studio-url)'}")
  log(f"ois-jax label-studio: serving http://{host}:{port} (Ctrl-C stops it)")
  servers.serve(app, host, port)
