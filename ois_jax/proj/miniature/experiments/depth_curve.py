"""Stage-1 learning curve: the quickstart's depth model trained longer, with the held-out SSI error.

Trains the DepthAnythingV2 of ois_jax/proj/miniature/configs/depth_tiny_procedural.py (with --config.KEY=VALUE overrides) and every
--every steps prints JSON with the mean training loss of the last 100 steps, the SSI error on 32
held-out scenes (a constant prediction scores exactly 1.0), wall and CPU seconds, and saves the
weights as a converted-DAv2 checkpoint WORKDIR/stepN (usable as `model.depth_checkpoint`, e.g.
by experiments/recipe_stage2.py) with its held-out depth maps, WORKDIR/stepN_heldout_depth.png.

  python -m ois_jax.proj.miniature.experiments.depth_curve --workdir runs/depth_curve --config.total_steps=3000

--output-bias B starts the depth head's last conv bias at B instead of 0: at Flax's initial
weights the final ReLU zeroes about 75 % of the output pixels, which then pass no gradient.
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax import checkpoint
from ois_jax.config import load_config, parse_with_overrides
from ois_jax.models.depth import DepthAnythingV2
from ois_jax.proj.miniature import depth_eval, depth_pretrain as dp


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--every", type=int, default=300)
  p.add_argument("--output-bias", type=float, default=None, metavar="B")
  args = parse_with_overrides(p)  # --config.KEY=VALUE overrides in args.set
  config = load_config("depth_tiny_procedural", args.set)
  model = DepthAnythingV2.from_config(dp.depth_config(config))
  params = dp.init_params(model, int(config.seed), config.train.get("layer_scale_init"))
  if args.output_bias is not None:
    params = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.full_like(v, args.output_bias)
        if [k.key for k in path[-2:]] == ["output_conv2_2", "bias"] else v, params)
  tx = dp.make_optimizer(config)
  opt_state = tx.init(params)
  step_fn = jax.jit(dp.make_train_step(model, config, tx), donate_argnums=(0, 1))
  data = dp.make_depth_iterator(config)
  start, cpu_start, losses = time.time(), time.process_time(), []
  for step in range(1, int(config.total_steps) + 1):
    params, opt_state, loss = step_fn(params, opt_state, next(data))
    losses.append(loss)
    if step % args.every == 0 or step == config.total_steps:
      heldout = depth_eval.heldout_depth(model, params, config, 32)
      print(json.dumps({"step": step, "train_loss": round(float(np.mean(jax.device_get(losses[-100:]))), 4),
                        "heldout_ssi": round(heldout["ssi"], 4),
                        "wall_s": round(time.time() - start), "cpu_s": round(time.process_time() - cpu_start)}),
            flush=True)
      checkpoint.save_checkpoint(os.path.join(args.workdir, f"step{step}"), jax.device_get(params),
                                 dp.depth_config(config), overwrite=True)
      depth_eval.plot_heldout_depth(heldout, os.path.join(args.workdir, f"step{step}_heldout_depth.png"))


if __name__ == "__main__":
  main()
