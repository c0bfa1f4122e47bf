"""The tiny config trained on real images (BSDS500) for a few minutes: the training loss and the
held-out NoC90 before and after. Prints JSON.

  python -m ois_jax.proj.miniature.experiments.bsds_train --steps 4000 --workdir /tmp/exp_bsds \
      --data-dir $OIS_DATA_ROOT/BSDS500 --benchmarks grabcut=$OIS_DATA_ROOT/GrabCut berkeley=$OIS_DATA_ROOT/Berkeley
Held-out: the BSDS500 'val' split (one object per image: the largest covering at most half of
the image), never trained on, and any benchmarks given (Berkeley's images are excluded from
training by default). Training runs exactly --steps steps (no wall-clock limit: the figures
must not depend on the machine's speed).
"""

import argparse
import json

import jax
import numpy as np

from ois_jax.configs import ois_tiny
from ois_jax.data_pipelines import eval_datasets
from ois_jax.config import apply_overrides, parse_with_overrides
from ois_jax.evaluation import evaluator
from ois_jax.training import train_step as ts, trainer, validation


KEYS = ("NoC85", "NoC90", "NoF90", "mIoU@1", "mIoU@5", "mIoU@20")


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=600)
  p.add_argument("--data-dir", required=True, help="the BSDS500 folder")
  p.add_argument("--workdir", default="/tmp/exp_bsds")
  p.add_argument("--eval-samples", type=int, default=32)
  p.add_argument("--benchmarks", nargs="*", default=[], metavar="NAME=DIR",
                 help="also evaluate on these benchmarks, e.g. grabcut=/data/GrabCut")
  p.add_argument("--seed", type=int, default=0)
  args = parse_with_overrides(p)  # --config.KEY=VALUE overrides in args.set
  config = apply_overrides(ois_tiny.get_config(), args.set)
  config.seed = args.seed
  config.data.dataset, config.data_dir = "bsds500", args.data_dir
  config.total_steps = args.steps
  config.checkpoint_every = max(50, args.steps // 4)
  config.eval.num_samples = 0
  fns = ts.ois_fns()
  model = fns.build_model(config.model)
  heldout = {"bsds500_val": validation.heldout_samples(config, args.eval_samples)}
  for item in args.benchmarks:
    name, directory = item.split("=", 1)
    source = eval_datasets.load(name, directory).source
    heldout[name] = [source[i] for i in range(len(source))]
  validators = {name: evaluator.Evaluator(model, config, samples, cache=True)
                for name, samples in heldout.items()}
  init = fns.init_params(model, jax.random.key(config.seed))
  before = {name: v.run(init).metrics for name, v in validators.items()}
  summary = trainer.train(config, args.workdir, quiet=True)
  trained = summary["state"]["params"]
  after = {name: v.run(trained).metrics for name, v in validators.items()}
  losses = [h["loss"] for h in summary["history"]]
  k = max(1, len(losses) // 10)
  print(json.dumps({
      "overrides": args.set, "seed": args.seed, "steps": summary["final_step"],
      "train_loss_first_10pct": float(np.mean(losses[:k])),
      "train_loss_last_10pct": float(np.mean(losses[-k:])),
      "held_out": {name: {"samples": len(heldout[name]),
                          "init": {m: before[name][m] for m in KEYS},
                          "trained": {m: after[name][m] for m in KEYS}} for name in heldout}}))


if __name__ == "__main__":
  main()
