"""What changes the recipe's numbers from one machine to another? Fingerprints of a short stage-1
run: a hash of the input batches, the first and last SSI losses and a hash of the final weights.
Run it under different conditions and compare: the same machine and settings give the same
fingerprint; a field that changes names the cause.

  python -m ois_jax.proj.miniature.experiments.fingerprint --steps 30
  taskset -c 0 python -m ois_jax.proj.miniature.experiments.fingerprint --steps 30   # one core
  XLA_FLAGS=--xla_cpu_max_isa=AVX2 python -m ois_jax.proj.miniature.experiments.fingerprint

Prints JSON: {'steps', 'batches' (hash of every input array), 'loss_first', 'loss_last' (repr,
all digits), 'weights' (hash of every parameter), 'cores' (the CPUs this process may use),
'xla_flags'}.
"""

import argparse
import hashlib
import json
import os

import jax
import numpy as np


def _hash(arrays) -> str:
  digest = hashlib.sha256()
  for a in arrays:
    digest.update(np.ascontiguousarray(a).tobytes())
  return digest.hexdigest()[:12]


def fingerprint(steps: int, overrides=()) -> dict:
  """Trains stage 1 (the recipe's config, its 600-step schedule) for `steps` steps."""
  from ois_jax.config import load_config
  from ois_jax.models.depth import DepthAnythingV2
  from ois_jax.proj.miniature import depth_pretrain
  config = load_config("depth_tiny_procedural", overrides)
  model = DepthAnythingV2.from_config(depth_pretrain.depth_config(config))
  params = depth_pretrain.init_params(model, int(config.seed), config.train.get("layer_scale_init"))
  tx = depth_pretrain.make_optimizer(config)
  opt_state = tx.init(params)
  step = jax.jit(depth_pretrain.make_train_step(model, config, tx))
  data = depth_pretrain.make_depth_iterator(config)
  batches, losses = [], []
  for _ in range(steps):
    batch = next(data)
    batches.extend(batch[k] for k in sorted(batch))
    params, opt_state, loss = step(params, opt_state, batch)
    losses.append(float(loss))
  return {"steps": steps, "batches": _hash(batches), "loss_first": repr(losses[0]),
          "loss_last": repr(losses[-1]),
          "weights": _hash(jax.tree_util.tree_leaves(jax.device_get(params))),
          "cores": len(os.sched_getaffinity(0)), "xla_flags": os.environ.get("XLA_FLAGS", "")}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("overrides", nargs="*", help="KEY=VALUE of the stage-1 config")
  args = parser.parse_args(argv)
  if args.steps < 1:
    parser.error("--steps must be at least 1")
  print(json.dumps(fingerprint(args.steps, args.overrides)))


if __name__ == "__main__":
  main()
