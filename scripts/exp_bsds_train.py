"""Must-show 1: the tiny config trained on BSDS500 for a few minutes lowers the training loss and
improves NoC90 on held-out images versus its initialisation. Prints JSON.

  python scripts/exp_bsds_train.py --minutes 5 --data-dir ../shared/data/BSDS500 --workdir /tmp/exp_bsds
Held-out: the BSDS500 'val' split (one object per image; the largest), never trained on.
"""

import argparse
import json

import jax
import numpy as np

from configs import ois_tiny
from ois_jax.evaluation import metrics
from ois_jax.training import train_step as ts, trainer, validation


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--minutes", type=float, default=5)
  p.add_argument("--steps", type=int, default=600)
  p.add_argument("--data-dir", default="../shared/data/BSDS500")
  p.add_argument("--workdir", default="/tmp/exp_bsds")
  p.add_argument("--eval-samples", type=int, default=32)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()
  config = ois_tiny.get_config()
  config.seed = args.seed
  config.data.dataset, config.data_dir = "bsds500", args.data_dir
  config.total_steps = args.steps
  config.checkpoint_every = max(50, args.steps // 4)
  config.eval.num_samples = 0
  fns = ts.ModelFns()
  model = fns.build_model(config.model)
  samples = validation.heldout_samples(config, args.eval_samples)
  validator = validation.Validator(config, model, fns, samples)
  init = fns.init_params(model, jax.random.key(config.seed))
  before = metrics.summarize(validator.ious(init))
  summary = trainer.train(config, args.workdir, time_limit_s=args.minutes * 60, quiet=True)
  after = metrics.summarize(validator.ious(summary["state"]["params"]))
  losses = [h["loss"] for h in summary["history"]]
  k = max(1, len(losses) // 10)
  print(json.dumps({
      "steps": summary["final_step"], "minutes": args.minutes, "held_out_samples": len(samples),
      "train_loss_first_10pct": float(np.mean(losses[:k])),
      "train_loss_last_10pct": float(np.mean(losses[-k:])),
      "init": {m: before[m] for m in ("NoC85", "NoC90", "mIoU@1", "mIoU@5")},
      "trained": {m: after[m] for m in ("NoC85", "NoC90", "mIoU@1", "mIoU@5")}}, indent=1))


if __name__ == "__main__":
  main()
