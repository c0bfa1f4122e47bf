"""`ois-jax export (--checkpoint DIR | --model NAME) --format onnx|jax --out DIR [--overwrite]`

Writes the image encoder and the click decoder of an OIS checkpoint (or the depth network of a
converted DepthAnythingV2 checkpoint) with a dynamic batch, and manifest.json beside them. Then
runs the written artifacts (onnxruntime, or the deserialised jax.export programs) against JAX on
random inputs at batch 1 and 2 and fails unless every output is within 1e-4 x its maximum;
--no-verify skips that. examples/onnx_segment.py and docs/deploy.md show how to run the result.
"""

import argparse
import logging

from ois_jax.errors import OISError

log = logging.getLogger("ois_jax.export")


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="ois-jax export", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument("--checkpoint", help="OIS checkpoint or converted DepthAnythingV2 checkpoint folder")
  source.add_argument("--model", help="a bundled model name (Predictor.from_pretrained)")
  p.add_argument("--format", required=True, choices=("onnx", "jax"),
                 help="onnx (jax2onnx, run with onnxruntime) or jax (jax.export for cpu, cuda, tpu)")
  p.add_argument("--out", required=True, help="output folder (created; must be new or an export)")
  p.add_argument("--overwrite", action="store_true", help="replace an export already in --out")
  p.add_argument("--no-verify", action="store_true", help="skip the check against JAX")
  p.add_argument("--input-hw", help="DepthAnythingV2 only: fixed input HxW, multiples of 14 "
                 "(default: the checkpoint's input size, square)")
  return p


def _parse_hw(text: str | None):
  if text is None:
    return None
  try:
    h, w = (int(v) for v in text.lower().split("x"))
  except ValueError:
    raise OISError(f"--input-hw {text!r}: expected HxW, e.g. 518x518") from None
  return h, w


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  input_hw = _parse_hw(args.input_hw)
  from ois_jax.export import exporter

  exporter.backend(args.format)  # a missing converter fails before the checkpoint loads
  exporter.check_target(args.out, args.overwrite)  # and so does an --out that cannot take it
  source = exporter.load_source(args.checkpoint, args.model, input_hw)
  log.info("exporting %s (%s) to %s", args.checkpoint or args.model, source.kind, args.out)
  manifest = exporter.export(source, args.format, args.out, overwrite=args.overwrite,
                             verify=not args.no_verify)
  files = ", ".join([entry["file"] for entry in manifest["artifacts"].values()]
                    + ([manifest["params"]["file"]] if "params" in manifest else []))
  checked = ""
  if "verification" in manifest:
    worst = max(r["max_abs_diff"] / max(r["output_max"], 1e-30)
                for name, runs in manifest["verification"].items() if name != "tolerance"
                for outputs in runs.values() for r in outputs.values())
    checked = f"; matches JAX within {worst:.1e} x output max at batch 1 and 2"
  print(f"{args.out}: {files} + manifest.json ({args.format}{checked})")
  return 0
