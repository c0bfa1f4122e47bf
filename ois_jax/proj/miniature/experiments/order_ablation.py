"""The order path on versus the `use_order=False` ablation at the same training budget, over
several seeds, on held-out procedural scenes. Prints JSON with the per-seed NoC85/90, mIoU@5/20
and mean +- std.

  python -m ois_jax.proj.miniature.experiments.order_ablation --recipe --seeds 0 1 2 --workdir quickstart_run
  python -m ois_jax.proj.miniature.experiments.order_ablation --steps 300 --seeds 0 1 2 --workdir /tmp/exp_order

--recipe: the quickstart's recipe (its default settings): one stage-1 depth model, then stage 2
(OIS with order maps from the model's own depth head) per seed and variant, evaluated with
`ois_jax.evaluation.evaluate` on the quickstart's 100 held-out scenes. The layout is the
quickstart's (WORKDIR/depth, WORKDIR/ois, WORKDIR/ois_no_order, WORKDIR/ois_seed1, ...), so a
finished quickstart workdir gives seed 0 for free. Without --recipe: the tiny config with the
scenes' true depth as external depth (`--steps` steps, `--eval-samples` scenes).

It also measures what the order path does inside the model: for the first (positive) click on
each held-out scene, the share of that click slot's cross-attention, over blocks and heads, that
lands on the target's tokens (`attention_on_target`, per attention kind), next to the target's
share of all tokens (what uniform attention would give), and each block's learned sigma.
"""

import argparse
import json
import os

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.proj.miniature import recipe
from ois_jax.configs import ois_tiny
from ois_jax import transforms
from ois_jax.geometry import PATCH_SIZE
from ois_jax.evaluation import clicker, evaluate, evaluator
from ois_jax.models import ois as ois_lib, prompts
from ois_jax.training import train_step as ts, trainer, validation


def attention_on_target(config, model, params, samples) -> dict:
  """Mean share of the first click slot's attention on target tokens, per attention kind."""
  size = int(config.model.input_size)
  grid = size // PATCH_SIZE
  npos, nneg = int(config.model.num_positive_slots), int(config.model.num_negative_slots)
  shares, target_share = {}, []
  for sample in samples:
    prepared = evaluator.prepare(sample, size, with_depth=True)
    depth = prepared.depth
    h, w = transforms.make_transform(prepared.gt.shape, size).resized_hw
    gt = np.zeros((size, size), np.float32)
    gt[:h, :w] = cv2.resize((prepared.gt > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    no_mask = np.zeros(gt.shape, bool)
    y, x, _ = clicker.next_click(gt.astype(np.int32), no_mask, no_mask)  # the protocol's first click
    target = gt.reshape(grid, PATCH_SIZE, grid, PATCH_SIZE).mean((1, 3)).ravel() > 0.5
    state = ois_lib.encode_image(model, params, jnp.asarray(prepared.image)[None], jnp.asarray(depth)[None])
    clicks = prompts.Clicks.from_lists([[(float(y), float(x), True)]], npos, nneg)
    _, sown = model.apply({"params": params}, state, clicks, jnp.zeros((1, size, size)),
                          jnp.zeros((1,), bool), method=ois_lib.OIS.decode, mutable=["intermediates"])
    for path, weights in jax.tree_util.tree_flatten_with_path(sown)[0]:
      names = [str(getattr(k, "key", k)) for k in path]
      kind = next((n for n in names if n in ("order_attn", "object_attn")), None)
      if kind is not None:  # weights (1, heads, slots, tokens); slot 0 is the click
        shares.setdefault(kind, []).append(float(np.asarray(weights)[0, :, 0][:, target].sum(-1).mean()))
    target_share.append(float(target.mean()))
  out = {kind: float(np.mean(v)) for kind, v in shares.items()}
  out["uniform"] = float(np.mean(target_share))
  return out


def learned_sigmas(params) -> list[float]:
  return [float(jax.nn.softplus(leaf)) for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
          if str(getattr(path[-1], "key", "")) == "sigma_raw"]


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
  fns = ts.ois_fns()
  model = fns.build_model(config.model)
  samples = validation.heldout_samples(config, eval_samples)
  params = summary["state"]["params"]
  m = evaluator.evaluate(model, params, config, samples, progress=False).metrics
  losses = [h["loss"] for h in summary["history"]]
  return {"seed": seed, "use_order": use_order, "NoC85": m["NoC85"], "NoC90": m["NoC90"],
          "mIoU@5": m["mIoU@5"], "mIoU@20": m["mIoU@20"],
          "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):])),
          "attention_on_target": attention_on_target(config, model, params, samples),
          "sigma": learned_sigmas(params)}


def run_recipe(use_order: bool, seed: int, workdir: str) -> dict:
  """Stage 2 of the quickstart recipe for one seed and variant (stage 1 shared), evaluated."""
  depth, base = recipe.build_configs()
  # The workdir is a quickstart one (its default settings); other seeds go to their own folders.
  workdir = recipe.prepare_workdir(workdir, recipe.settings_record(depth, base, 100, 20),
                                       log=lambda *a: None)
  config = base.copy_and_resolve_references()
  config.seed = seed
  depth_ckpt = recipe.stage1(workdir, depth, quiet=True, log=lambda *a: None)  # stdout is the JSON
  model, c, params = recipe.stage2(workdir, config, depth_ckpt, use_order, quiet=True,
                                       log=lambda *a: None)
  source = recipe.heldout_scenes(config, 100)
  samples = [source[i] for i in range(len(source))]
  m = evaluate(model, params, c, samples, progress=False).metrics
  return {"seed": seed, "use_order": use_order,
          **{k: m[k] for k in ("NoC85", "NoC90", "NoC95", "mIoU@1", "mIoU@5", "mIoU@20", "NoF90")},
          "attention_on_target": attention_on_target(c, model, params, samples[:32]),
          "sigma": learned_sigmas(params)}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--recipe", action="store_true", help="the quickstart's recipe (stage-1 depth model)")
  p.add_argument("--steps", type=int, default=300, help="training steps (without --recipe)")
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--workdir", default="/tmp/exp_order")
  p.add_argument("--eval-samples", type=int, default=32, help="held-out scenes (without --recipe)")
  args = p.parse_args()
  if args.recipe:
    runs = [run_recipe(order, seed, args.workdir) for seed in args.seeds for order in (True, False)]
  else:
    runs = [run(order, seed, args.steps, args.workdir, args.eval_samples)
            for seed in args.seeds for order in (True, False)]
  out = {"recipe": args.recipe, "steps": None if args.recipe else args.steps, "runs": runs}
  for order in (True, False):
    out[f"use_order={order}"] = {"seeds": sum(r["use_order"] == order for r in runs)}
    for key in ("NoC85", "NoC90", "mIoU@5", "mIoU@20"):
      values = np.array([r[key] for r in runs if r["use_order"] == order])
      out[f"use_order={order}"].update({f"{key}_mean": float(values.mean()), f"{key}_std": float(values.std())})
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
