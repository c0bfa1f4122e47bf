"""`ois-jax convert SRC DST`: DepthAnythingV2 weights between PyTorch files and Flax checkpoints.

  SRC a .pth/.pt/.safetensors file, DST a directory  -> self-describing orbax checkpoint
  SRC a checkpoint directory, DST a .pth/.pt file     -> original DAv2 layout (pretrained.*, depth_head.*)
  SRC a checkpoint directory, DST a .safetensors file -> Hugging Face layout (model.safetensors also
                                                         gets a config.json for from_pretrained)

A custom-size model (variant "custom", e.g. the quickstart's small depth model) is written with its
sizes beside the weights (`tiny.pth` -> `tiny.json`): the tensor shapes do not tell the number of
attention heads nor the intermediate layers. Converting back reads that JSON (or --sizes FILE).
"""

import argparse
import os
import time

from ois_jax import outputs
from ois_jax.cli import _log
from ois_jax.errors import CheckpointError

_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="ois-jax convert", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("src", help="a .pth/.pt/.safetensors file, or a Flax checkpoint directory")
  p.add_argument("dst", help="a checkpoint directory, or a .pth/.pt/.safetensors file")
  p.add_argument("--format", choices=("original", "hf"), default=None,
                 help="PyTorch-side layout (default: detected from the keys when reading; "
                      ".pth -> original, .safetensors -> hf when writing)")
  p.add_argument("--variant", choices=("vits", "vitb", "vitl", "custom"), default=None,
                 help="expected variant (default: detected from the tensor shapes); a checkpoint "
                      "of another variant is an error")
  p.add_argument("--sizes", default=None, metavar="FILE",
                 help="JSON with the sizes of a custom-size model (default: SRC's .json beside it, "
                      "as `ois-jax convert` writes it)")
  p.add_argument("--pos-embed-mode", choices=("original", "hf"), default=None,
                 help="position-embedding interpolation recorded in the Flax checkpoint "
                      "(original = DAv2's, the default; hf = transformers')")
  p.add_argument("--overwrite", action="store_true", help="replace an existing output")
  return p


def main(argv: list[str]) -> int:
  args = build_parser().parse_args(argv)
  _log.setup("convert")
  from ois_jax import convert  # after argument parsing: `--help` stays fast
  start = time.time()
  if os.path.isdir(args.src):
    if not args.dst.endswith(_WEIGHT_SUFFIXES):
      raise CheckpointError(f"{args.dst}: converting a Flax checkpoint needs a .pth, .pt or "
                            ".safetensors output file")
    outputs.check_file(args.dst, args.overwrite, _WEIGHT_SUFFIXES, what="DST", inputs=[args.src])
    from ois_jax.checkpoint import stored_config
    stored = stored_config(args.src).get("variant")
    if args.variant is not None and stored != args.variant:
      raise CheckpointError(f"{args.src}: holds a DepthAnythingV2 {stored} checkpoint, but "
                            f"variant {args.variant} was asked for")
    fmt = convert.convert_from_flax(args.src, args.dst, args.format, overwrite=args.overwrite)
    extra = f" and its sizes to {convert.sizes_path(args.dst)}" if stored == "custom" else ""
    print(f"wrote {args.dst} ({fmt} layout){extra} in {time.time() - start:.1f} s")
    return 0
  if args.src.endswith(_WEIGHT_SUFFIXES) or os.path.isfile(args.src):
    outputs.check_folder(args.dst, what="DST")
    config, fmt = convert.convert_to_flax(args.src, args.dst, args.format, args.variant,
                                          overwrite=args.overwrite, pos_embed_mode=args.pos_embed_mode,
                                          sizes=args.sizes)
    print(f"wrote {args.dst} (DepthAnythingV2 {config.variant}, from the {fmt} layout) "
          f"in {time.time() - start:.1f} s")
    return 0
  raise CheckpointError(f"{args.src}: no such file or checkpoint directory")
