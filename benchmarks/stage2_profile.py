"""Stage 2 of the quickstart, part by part: where a train step's time goes, as JSON.

  python benchmarks/stage2_profile.py [--config ois_tiny_procedural] [--repeats 7] [--out p.json]
      [--train-steps 120 [--train-repeats 2]]

The quickstart's stage-2 config (random stand-in weights: model.depth_checkpoint=""; speed does
not depend on their values), on a batch of its real input pipeline. Each part is jitted on its own
and timed after compile (median over --repeats, each call ends with block_until_ready):
  data           the input pipeline, ms per batch (grain threads, prefetch drained first)
  encoder        the frozen ViT, forward
  depth_head     the frozen DPT depth head, forward
  decode         image_proj + seg_head.prepare + prompts + attention blocks + segmentation head,
                 forward and backward, as the gradient pass of the step
  click_round    one no-gradient click-simulation round (decode + next click); a step runs
                 U{0..max_iterative_rounds} of them, `click_rounds` is that mean
  optimizer      Adam update and apply (frozen leaves: no state, zero update)
  cache_lookup   train.cache_frozen_outputs: hashing the batch's images, stacking cached rows
Then the whole jitted step without and with train.cache_frozen_outputs, interleaved (the two
alternate, over the same steps, hence the same random round counts), median ms per step over
--repeats runs of --steps steps; and the projected cost of the --total-steps run: without the
cache every step encodes its batch; with it, a batch holding an image not seen before also runs
the frozen part (`frozen_batch`), which happens for ceil(num_train / batch) batches at most.
--train-steps N also times whole `trainer.train` runs (compile included) without and with the
cache, interleaved, on a dataset scaled to the same number of epochs. XLA's FLOP count per part
is given too (the click rounds' while-loop body is counted once): the step's FLOPs are the sum of
the forward-only frozen parts and the rest, so no backward pass runs through the frozen encoder.
"""

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.config import load_config
from ois_jax.training import frozen_cache, iterative, loss as loss_lib, optim, sharding
from ois_jax.training import train_step as ts
from _output import emit  # benchmarks/_output.py (scripts run from this folder)


def _median_ms(fn, args, repeats):
  """Median ms of `fn(*args)` (compiled first) over `repeats` calls, and its XLA FLOPs."""
  compiled = fn.lower(*args).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t)
  return {"ms": 1e3 * float(np.median(times)), "flops": float((cost or {}).get("flops", float("nan")))}


def _data(config, repeats=0, per_repeat=4):
  """(the first batch, median ms per batch over `repeats` x `per_repeat` batches)."""
  from ois_jax.data_pipelines import training as data_training
  it = data_training.make_train_iterator(config, None, int(config.seed), shard_index=0, shard_count=1)
  batch = next(it)
  for _ in range(per_repeat if repeats else 0):  # drain what was prefetched while the pipeline started
    next(it)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    for _ in range(per_repeat):
      next(it)
    times.append((time.perf_counter() - t) / per_repeat)
  time.sleep(2)  # the read threads fill their buffer and go idle before anything else is timed
  return batch, 1e3 * float(np.median(times)) if times else None


def profile(name, repeats, steps, total_steps):
  config = load_config(name)
  config.model.depth_checkpoint = ""
  fns = ts.ois_fns()
  mesh = sharding.make_mesh(config)
  model = fns.build_model(config.model)
  from ois_jax.models import ois
  host, _ = _data(config)
  parts = {}
  state, shardings, tx, mask = ts.create_train_state(model, config, fns, mesh, jax.random.key(0))
  params = state["params"]
  batch = sharding.shard_batch(host, config, mesh)
  images = batch["image"]
  gt = batch["gt"].astype(jnp.int32)
  coords, valid = batch["click_coords"], batch["click_valid"]
  b, s = gt.shape[0], int(config.model.input_size)
  num_pos = int(config.model.num_positive_slots)
  threshold = float(config.eval.threshold)

  encoder = jax.jit(lambda p, x: model.apply({"params": p}, x, method=lambda m, x: m.encoder(x)))
  parts["encoder"] = _median_ms(encoder, (params, images), repeats)
  levels = encoder(params, images)
  depth_head = jax.jit(lambda p, f: model.apply({"params": p}, f, method=lambda m, f: m.depth_head(f)))
  parts["depth_head"] = _median_ms(depth_head, (params, levels), repeats)
  frozen_fn = jax.jit(lambda p, x: ois.frozen_outputs(model, p, x))
  frozen = frozen_fn(params, images)

  def gradient_pass(p, frozen, prev, has_prev):
    def loss_fn(p):
      p = optim.freeze(p, mask)
      logits = ois.decode(model, p, ois.image_state(model, p, frozen), fns.make_clicks(coords, valid),
                          prev, has_prev)
      return loss_lib.normalized_focal_loss(logits, gt)
    return jax.value_and_grad(loss_fn)(p)

  prev, has_prev = jnp.full((b, s, s), 0.5, jnp.float32), jnp.ones((b,), bool)
  parts["decode"] = _median_ms(jax.jit(gradient_pass), (params, frozen, prev, has_prev), repeats)

  def one_round(p, frozen, rng):
    p = jax.lax.stop_gradient(p)
    image_state = ois.image_state(model, p, frozen)
    predict = lambda c, v, pm, hp: ois.decode(model, p, image_state, fns.make_clicks(c, v), pm, hp)
    return iterative.run_iterative_rounds(predict, gt, coords, valid, rng, jnp.int32(1),
                                          num_positive=num_pos, threshold=threshold)

  parts["click_round"] = _median_ms(jax.jit(one_round), (params, frozen, jax.random.key(2)), repeats)
  mean_rounds = int(config.data.max_iterative_rounds) / 2
  parts["click_rounds"] = {"ms": mean_rounds * parts["click_round"]["ms"],
                           "flops": mean_rounds * parts["click_round"]["flops"]}
  grads = jax.jit(gradient_pass)(params, frozen, prev, has_prev)[1]

  def update(p, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, p)
    return jax.tree.map(jnp.add, p, updates), opt_state

  parts["optimizer"] = _median_ms(jax.jit(update), (params, state["opt_state"], grads), repeats)
  config.train.cache_frozen_outputs = True
  cache = frozen_cache.FrozenOutputCache(model, config, fns, log=lambda *_: None)
  cache(host, params)  # fill
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    cached = cache(host, params)
    times.append(time.perf_counter() - t)
  parts["cache_lookup"] = {"ms": 1e3 * float(np.median(times)), "flops": 0.0}
  parts["frozen_batch"] = _median_ms(frozen_fn, (params, images), repeats)

  parts["data"] = {"ms": _data(config, repeats)[1], "flops": 0.0}

  # The whole step, without and with the cache, interleaved over the same steps.
  step_fn = ts.make_train_step(model, config, fns, tx, mask)
  step = ts.jit_train_step(step_fn, shardings, mesh)
  batches = {"before": batch, "after": sharding.shard_batch(cached, config, mesh)}
  states, compiled, flops, runs = {}, {}, {}, {"before": [], "after": []}
  rng = jax.random.key(int(config.seed) + 1)
  for key, bt in batches.items():
    states[key] = jax.tree.map(jnp.copy, state)
    compiled[key] = step.lower(states[key], bt, rng).compile()
    cost = compiled[key].cost_analysis()
    flops[key] = float((cost[0] if isinstance(cost, (list, tuple)) else cost).get("flops", float("nan")))
    states[key], m = compiled[key](states[key], bt, rng)
    jax.block_until_ready(m)
  rounds = []
  for _ in range(repeats):
    for key in runs:
      t = time.perf_counter()
      for _ in range(steps):
        states[key], m = compiled[key](states[key], batches[key], rng)
        if key == "after":
          rounds.append(int(m["num_rounds"]))
      jax.block_until_ready(m)
      runs[key].append((time.perf_counter() - t) / steps)
  step_ms = {k: 1e3 * float(np.median(v)) for k, v in runs.items()}

  bsz = int(config.data.batch_size)
  miss_batches = min(total_steps, math.ceil(int(config.data.procedural_num_train) / bsz))
  p = {k: v["ms"] for k, v in parts.items()}
  run_s = {"before": total_steps * (step_ms["before"] + p["data"]) / 1e3,
           "after": (total_steps * (step_ms["after"] + p["data"] + p["cache_lookup"])
                     + miss_batches * p["frozen_batch"]) / 1e3}
  return {"config": name, "batch_size": bsz, "input_size": s, "repeats": repeats,
          "device": str(jax.devices()[0].device_kind), "parts": parts,
          "sum_of_step_parts_ms": sum(p[k] for k in ("encoder", "depth_head", "decode", "click_rounds",
                                                       "optimizer")),
          "step_ms": step_ms, "step_flops": flops, "steps_per_run": steps,
          "mean_rounds_timed": float(np.mean(rounds)),
          "projected_run": {"total_steps": total_steps, "batches_with_new_images": miss_batches,
                            "seconds": run_s,
                            "note": "steps + data + (cache lookup + new-image batches' frozen pass); "
                                    "data loading overlaps the step in training (grain threads)"}}


def end_to_end(name, steps, repeats):
  """Wall seconds of `trainer.train` (compile included) without and with the cache, interleaved.

  `steps` steps on `num_train * steps / total_steps` scenes: as many epochs as the full run, so
  the same share of batches meets new images.
  """
  import tempfile
  from ois_jax.training import trainer
  config = load_config(name)
  scenes = max(1, round(int(config.data.procedural_num_train) * steps / int(config.total_steps)))
  out = {"train_steps": steps, "num_train": scenes, "seconds": {"before": [], "after": []}}
  for _ in range(repeats):
    for key, cache in (("before", False), ("after", True)):
      c = load_config(name)
      c.model.depth_checkpoint = ""
      c.total_steps = c.checkpoint_every = steps
      c.data.procedural_num_train = scenes
      c.train.cache_frozen_outputs = cache
      with tempfile.TemporaryDirectory() as workdir:
        t = time.perf_counter()
        summary = trainer.train(c, workdir, quiet=True, log=lambda *a: None)
        out["seconds"][key].append(time.perf_counter() - t)
      out.setdefault("final_loss", {})[key] = summary["history"][-1]["loss"]
      out.setdefault("data_stats", {})[key] = summary["data_stats"]
  out["median_s"] = {k: float(np.median(v)) for k, v in out["seconds"].items()}
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="ois_tiny_procedural")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--steps", type=int, default=8, help="steps per timed run of the whole step")
  parser.add_argument("--total-steps", type=int, default=None, help="projected run (default: the config's)")
  parser.add_argument("--train-steps", type=int, default=0,
                      help="also time whole training runs of this many steps (0: no)")
  parser.add_argument("--train-repeats", type=int, default=2)
  parser.add_argument("--out", default=None, help="also write the JSON here")
  args = parser.parse_args()
  total = args.total_steps or int(load_config(args.config).total_steps)
  result = profile(args.config, args.repeats, args.steps, total)
  if args.train_steps:
    result["end_to_end"] = end_to_end(args.config, args.train_steps, args.train_repeats)
  emit(result, args.out)


if __name__ == "__main__":
  main()
