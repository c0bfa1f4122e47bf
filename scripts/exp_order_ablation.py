"""Must-show 2: on procedural depth scenes (external, true depth), the order path on versus the
`use_order=False` ablation at the same training budget, over several seeds. Prints JSON with the
per-seed NoC90 / mIoU@5 on held-out scenes and mean +- std.

  python scripts/exp_order_ablation.py --steps 300 --seeds 0 1 2 --workdir /tmp/exp_order
"""

import argparse
import json
import os

import numpy as np

from configs import ois_tiny
from ois_jax.evaluation import metrics
from ois_jax.training import train_step as ts, trainer, validation


def run(use_order: bool, seed: int, steps: int, workdir: str, eval_samples: int) -> dict:
  config = ois_tiny.get_config()
  config.seed = seed
  config.data.dataset = "procedural"
  config.model.depth_source = "external"
  config.model.use_order = use_order
  config.total_steps = steps
  config.checkpoint_every = steps
  config.eval.num_samples = 0
  config.data.procedural_num_val = eval_samples
  summary = trainer.train(config, os.path.join(workdir, f"order{int(use_order)}_seed{seed}"),
                          quiet=True)
  fns = ts.ModelFns()
  model = fns.build_model(config.model)
  validator = validation.Validator(config, model, fns, validation.heldout_samples(config, eval_samples))
  m = metrics.summarize(validator.ious(summary["state"]["params"]))
  losses = [h["loss"] for h in summary["history"]]
  return {"seed": seed, "use_order": use_order, "NoC85": m["NoC85"], "NoC90": m["NoC90"],
          "mIoU@5": m["mIoU@5"], "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):]))}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--workdir", default="/tmp/exp_order")
  p.add_argument("--eval-samples", type=int, default=32)
  args = p.parse_args()
  runs = [run(order, seed, args.steps, args.workdir, args.eval_samples)
          for seed in args.seeds for order in (True, False)]
  out = {"steps": args.steps, "runs": runs}
  for order in (True, False):
    noc = np.array([r["NoC90"] for r in runs if r["use_order"] == order])
    out[f"use_order={order}"] = {"NoC90_mean": float(noc.mean()), "NoC90_std": float(noc.std()),
                                 "seeds": len(noc)}
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
