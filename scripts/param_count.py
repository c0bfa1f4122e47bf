"""Parameter count of the OIS model (ViT-B, 1022 input by default) next to the paper's 107.88 M.

Shapes only (jax.eval_shape): nothing is initialised or allocated.

  python scripts/param_count.py [--config configs/ois_vitb_1024.py] [--json]
"""

import argparse
import json

import jax
import numpy as np

from ois_jax.config import load_config, parse_with_overrides
from ois_jax.errors import OISError
from ois_jax.models import ois

PAPER_TOTAL_M = 107.88


def count(cfg_model) -> dict:
  """{top-level params key: count} plus groups and the total."""
  model = ois.build_model(cfg_model)
  shapes = ois.param_shapes(model)
  per_key = {k: int(sum(np.prod(x.shape) for x in jax.tree.leaves(v))) for k, v in shapes.items()}
  unused = 0  # refinenet4.resConfUnit1: stored by every DAv2 head, never used in the forward
  for head in ("depth_head", "seg_head"):
    if head in shapes:
      unit = shapes[head]["scratch"]["refinenet4"]["resConfUnit1"]
      unused += int(sum(np.prod(x.shape) for x in jax.tree.leaves(unit)))
  prompt = sum(v for k, v in per_key.items() if k not in ("encoder", "depth_head", "seg_head"))
  total = sum(per_key.values())
  return {"per_key": per_key, "encoder": per_key.get("encoder", 0),
          "depth_head": per_key.get("depth_head", 0), "seg_head": per_key.get("seg_head", 0),
          "prompt_fusion": prompt, "unused_refinenet4_units": unused,
          "pos_embed": int(np.prod(shapes["encoder"]["pos_embed"].shape)),
          "total": total, "trainable": total - per_key.get("encoder", 0) - per_key.get("depth_head", 0)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="configs/ois_vitb_1024.py")
  parser.add_argument("--json", action="store_true")
  args = parse_with_overrides(parser, argv)  # --config.KEY=VALUE overrides in args.set
  try:
    config = load_config(args.config, args.set)
  except OISError as e:
    parser.exit(2, f"param_count: error: {e}\n")
  c = count(config.model)
  if args.json:
    print(json.dumps(c, indent=2))
    return 0
  m = lambda n: f"{n / 1e6:8.2f} M"
  print(f"OIS parameter count ({args.config})")
  for k, v in c["per_key"].items():
    print(f"  {k:<16} {m(v)}")
  print(f"  {'-' * 28}")
  print(f"  encoder (frozen)     {m(c['encoder'])}")
  print(f"  depth head (frozen)  {m(c['depth_head'])}")
  print(f"  seg head             {m(c['seg_head'])}")
  print(f"  prompt fusion        {m(c['prompt_fusion'])}")
  print(f"  total                {m(c['total'])}   (paper: {PAPER_TOTAL_M:.2f} M, "
        f"difference {c['total'] / 1e6 - PAPER_TOTAL_M:+.2f} M)")
  print(f"  trainable            {m(c['trainable'])}")
  without_unused = c["total"] - c["unused_refinenet4_units"]
  print(f"  total without the 2 unused refinenet4.resConfUnit1 units: {m(without_unused)}")
  print()
  backbone_heads = c["encoder"] + c["depth_head"] + c["seg_head"]
  used_heads = backbone_heads - c["unused_refinenet4_units"]
  print("Where the difference comes from (the paper gives only the total):")
  print(f"  - encoder + two DAv2 heads alone: {m(backbone_heads).strip()}, already above the paper's total;")
  print(f"    each head stores refinenet4.resConfUnit1 ({m(c['unused_refinenet4_units'] / 2).strip()}), which"
        " DAv2 never calls;")
  print(f"    without those two units: {m(used_heads).strip()}, leaving "
        f"{PAPER_TOTAL_M - used_heads / 1e6:.2f} M for the paper's prompt fusion.")
  print(f"  - our prompt fusion has {m(c['prompt_fusion']).strip()} (OUR design where the paper is silent:"
        " C = 128 image projection, 3 blocks with 2 attentions + MLP 512, token->prompt attention,"
        " C -> encoder-width out projection; see docs/model.md). The paper's fusion must be smaller"
        " (e.g. no out projection, a narrower MLP) or counted differently.")
  print(f"  - the position table ({m(c['pos_embed']).strip()}) is stored at DINOv2's 37x37 grid;"
        " counting it or not moves the total by that much.")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
