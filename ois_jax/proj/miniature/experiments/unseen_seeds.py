"""The bundled model on scenes no training or tuning saw: the held-out scenes of its model card
are the quickstart's `val` split of generator seed 0, on which the recipe's settings were chosen;
here the `val` split of other generator seeds (`data.procedural_seed`) is drawn instead.

  python -m ois_jax.proj.miniature.experiments.unseen_seeds --seeds 7 8 9 10 11

Prints JSON: the card's figures, each seed's (100 scenes, 20 clicks), and all seeds pooled
(every seed has the same number of scenes, so the pooled NoC and mIoU are the seeds' means).
"""

import argparse
import json

import ml_collections
import numpy as np

from ois_jax import pretrained

MODEL = "ois-tiny-procedural"
KEYS = ("NoC85", "NoC90", "NoC95", "mIoU@1", "mIoU@5", "NoF90")
UNSEEN_SEEDS = (7, 8, 9, 10, 11)


def evaluate_seeds(seeds, samples: int = 100, max_clicks: int = 20) -> dict:
  """{seed: metrics} for the bundled model on `samples` val scenes of each generator seed.

  One evaluation over the scenes of all seeds (one compile of the click loop), summarised per seed.
  """
  from ois_jax.evaluation import evaluate, metrics
  from ois_jax.models import ois
  from ois_jax.proj.miniature import recipe
  weights = pretrained.load(MODEL)
  config = ml_collections.ConfigDict(weights.config)
  scenes, seed_of = [], {}
  for seed in seeds:
    config.data.procedural_seed = int(seed)
    for scene in recipe.heldout_scenes(config, samples):
      scenes.append(scene)
      seed_of[str(scene["name"])] = int(seed)
  result = evaluate(ois.build_model(config.model), weights.params, config, scenes,
                    max_clicks=max_clicks, progress=False)
  rows_of = {int(seed): [i for i, name in enumerate(result.names) if seed_of[name] == int(seed)]
             for seed in seeds}
  return {seed: {k: float(v) for k, v in metrics.summarize(result.ious[rows]).items() if k in KEYS}
          for seed, rows in rows_of.items()}


def pooled(per_seed: dict) -> dict:
  """The seeds' mean of every metric (equal scene counts), and the std over seeds."""
  table = np.asarray([[m[k] for k in KEYS] for m in per_seed.values()])
  return {"mean": dict(zip(KEYS, np.round(table.mean(0), 4).tolist())),
          "std_over_seeds": dict(zip(KEYS, np.round(table.std(0), 4).tolist()))}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--seeds", type=int, nargs="+", default=list(UNSEEN_SEEDS),
                 help="generator seeds (0 is the card's; no other seed is used by training or tuning)")
  p.add_argument("--samples", type=int, default=100)
  args = p.parse_args()
  if 0 in args.seeds:
    p.error("--seeds: 0 is the generator seed of the model card's held-out scenes, not an unseen one")
  card = pretrained.model_card(MODEL)["heldout"]
  per_seed = evaluate_seeds(args.seeds, args.samples)
  print(json.dumps({"model": MODEL, "card": {k: card[k] for k in KEYS}, "samples_per_seed": args.samples,
                    "seeds": per_seed, **pooled(per_seed)}, indent=1))


if __name__ == "__main__":
  main()
