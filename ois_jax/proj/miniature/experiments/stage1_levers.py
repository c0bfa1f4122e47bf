"""Stage 1 alone with config overrides, scored as stage 2 would use it, as JSON.

Trains the quickstart's depth model (ois_jax/proj/miniature/configs/depth_tiny_procedural.py with KEY=VALUE overrides)
into WORKDIR with `depth_pretrain.train_depth` (its held-out SSI error on 32 scenes: a constant
map scores 1.0), then scores its first-click order maps on the quickstart's 100 held-out scenes
(experiments/order_maps.py; the scenes' true depth gives about 0.89 at 112 px).

  python -m ois_jax.proj.miniature.experiments.stage1_levers runs/s1_default
  python -m ois_jax.proj.miniature.experiments.stage1_levers runs/s1_3000 total_steps=3000 train.learning_rate=5e-4 train.warmup_steps=200
  python -m ois_jax.proj.miniature.experiments.stage1_levers runs/s1_224 model.input_size=224
"""

import argparse
import json
import time

from ois_jax.proj.miniature.experiments.order_maps import order_map_scores
from ois_jax.config import load_config
from ois_jax.proj.miniature import depth_pretrain


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("workdir")
  p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
  args = p.parse_args()
  config = load_config("depth_tiny_procedural", args.overrides)
  start = time.time()
  summary = depth_pretrain.train_depth(config, args.workdir, quiet=True)
  seconds = time.time() - start
  scores = order_map_scores(summary["checkpoint"])
  print(json.dumps({"overrides": args.overrides, "steps": summary["steps"],
                    "heldout_ssi": round(float(summary["heldout_ssi"]), 4),
                    "train_seconds": round(seconds, 1), **scores}))


if __name__ == "__main__":
  main()
