"""`ois-jax depth IMAGE --checkpoint DIR --out depth.npy [--png depth.png]`.

Writes the raw float32 relative inverse depth (larger = closer) at the image's original H x W,
as DepthAnythingV2's `infer_image` returns it, and optionally a colour-mapped PNG.
"""

import argparse
import logging
import time

from ois_jax import outputs
from ois_jax.cli import _common, _log

log = logging.getLogger("ois_jax.depth")


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="ois-jax depth", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("image", help="input image (any format Pillow reads)")
  p.add_argument("--checkpoint", required=True, help="Flax checkpoint directory from `ois-jax convert`")
  p.add_argument("--out", required=True, help="output .npy: float32 (H, W) depth")
  p.add_argument("--png", default=None, help="also write a colour-mapped PNG here")
  p.add_argument("--input-size", type=int, default=None,
                 help="shorter side fed to the network (default: the checkpoint's, 518)")
  p.add_argument("--overwrite", action="store_true", help="replace existing output files")
  return p


def main(argv: list[str]) -> int:
  args = build_parser().parse_args(argv)
  _log.setup("depth")
  outputs.check_file(args.out, args.overwrite, (".npy",), inputs=[args.image])
  if args.png:
    outputs.check_file(args.png, args.overwrite, (".png",), what="--png", inputs=[args.image, args.out])

  _common.check_at_least(args.input_size, 14, "--input-size", below="the 14-pixel patch size")

  import numpy as np
  from ois_jax import io
  from ois_jax.models.depth import load_depth_model

  image = io.load_image(args.image)  # fail on a bad image before loading the model
  log.info("loaded %s (%d x %d)", args.image, image.shape[0], image.shape[1])
  model, config, params = load_depth_model(args.checkpoint)
  input_size = config.input_size if args.input_size is None else args.input_size
  _common.check_at_least(input_size, 14, "--input-size", below="the 14-pixel patch size")
  log.info("model DepthAnythingV2 %s; compiling and running at input size %d", config.variant, input_size)
  start = time.time()
  depth = model.infer_image(params, image, input_size)
  log.info("inference took %.2f s (compilation included)", time.time() - start)

  outputs.save_npy(args.out, depth.astype(np.float32))
  print(f"wrote {args.out}: float32 {depth.shape[0]} x {depth.shape[1]}, "
        f"range [{depth.min():.4g}, {depth.max():.4g}]")
  if args.png:
    io.save_depth_png(depth, args.png)
    print(f"wrote {args.png}")
  return 0
