"""`ois-jax segment IMAGE (--checkpoint DIR | --model NAME | --config CFG) --click y,x,+ [--click y,x,- ...] --out mask.png`

Segments one image from clicks (original pixel coordinates, + positive / - negative) and writes
the binary mask (prob > threshold) as an 8-bit PNG (255 = object), optionally the probabilities
as .npy. --checkpoint takes an export, a training workdir (its best step, else its latest) or one
training step; --model a bundled model (ois-tiny-procedural). With only --config the model is
randomly initialised from --seed (useful only to try the pipeline). Existing outputs are refused
unless --overwrite. Config overrides: `--config.eval.threshold=0.5` (repeatable; with weights, the
model section cannot change).
"""

import argparse

import numpy as np

from ois_jax import config as config_lib
from ois_jax import outputs
from ois_jax.cli import _common
from ois_jax.errors import ClickError

MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")


def parse_click(text: str) -> tuple[float, float, bool]:
  """'y,x,+' / 'y,x,-' (also pos/neg, 1/0) -> (y, x, is_positive)."""
  parts = [p.strip() for p in text.split(",")]
  if len(parts) != 3 or parts[2] not in ("+", "-", "pos", "neg", "1", "0"):
    raise ClickError(f"--click {text!r}: expected y,x,+ or y,x,-")
  try:
    y, x = float(parts[0]), float(parts[1])
  except ValueError:
    raise ClickError(f"--click {text!r}: y and x must be numbers") from None
  return y, x, parts[2] in ("+", "pos", "1")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="ois-jax segment", description=__doc__.split("\n\n")[0])
  parser.add_argument("image")
  _common.add_model_arguments(parser)
  parser.add_argument("--click", action="append", default=[], help="y,x,+ or y,x,- (repeatable)")
  parser.add_argument("--out", required=True, help="output mask image (.png: 0 / 255)")
  parser.add_argument("--prob-out", help="also save the (H, W) float32 probabilities as .npy")
  parser.add_argument("--threshold", type=float, default=None,
                      help="mask = prob > threshold (default: the config's eval.threshold, 0.49)")
  parser.add_argument("--seed", type=int, default=None,
                      help="random init seed (--config without weights only; default 0)")
  parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
  return parser


def main(argv=None) -> int:
  args = config_lib.parse_with_overrides(build_parser(), argv)
  # Everything that can be checked without the model is checked first (seconds, not a compile).
  _common.check_probability(args.threshold, "--threshold")
  _common.check_seed_source(args)
  outputs.check_file(args.out, args.overwrite, MASK_EXTENSIONS, inputs=[args.image])
  if args.prob_out:
    outputs.check_file(args.prob_out, args.overwrite, (".npy",), what="--prob-out",
                       inputs=[args.image, args.out])
  clicks = [parse_click(c) for c in args.click]
  if not clicks:
    raise ClickError("give at least one --click y,x,+")
  from ois_jax.io import load_image
  from ois_jax.predictor import check_click
  image = load_image(args.image)
  for i, click in enumerate(clicks):
    check_click(click, i, image.shape[:2])

  from ois_jax.predictor import Predictor
  config, params, source = _common.load_model(args)
  predictor = Predictor.from_config(config, params=params, seed=args.seed or 0)
  print(f"weights: {source}")
  predictor.set_image(image)
  prob = predictor.predict(clicks)
  threshold = float(config.eval.threshold if args.threshold is None else args.threshold)
  _common.check_probability(threshold, "eval.threshold")
  mask = (prob > threshold).astype(np.uint8) * 255
  outputs.save_image(args.out, mask)
  if args.prob_out:
    outputs.save_npy(args.prob_out, prob, what="--prob-out")
  print(f"{args.out}: {int((mask > 0).sum())} of {mask.size} pixels segmented "
        f"({len(clicks)} clicks, image {image.shape[1]}x{image.shape[0]})"
        + (f"; probabilities in {args.prob_out}" if args.prob_out else ""))
  return 0
