"""Clicks per second of the jitted click loop vs a per-click host loop (SciPy EDT oracle).

Both loops use the same model, the same params and the same compiled decode, so they make the same
predictions; the host loop only moves the click simulation to NumPy/SciPy with one device round trip
per click (as RITM / SimpleClick / SegNext evaluate). Compile time is excluded from both. The loops
alternate `--repeats` times and the fastest pass of each counts (the 1-minute load average before
and after is recorded: on a shared machine it moves the figures).

  python benchmarks/eval_speed.py --config configs/ois_tiny.py \\
      --data-dir ../shared/data/DAVIS345 --limit 8 --host-limit 4 --out runs/bench/eval_speed.json
  python benchmarks/eval_speed.py --config configs/ois_vitb_1024.py --data-dir .../DAVIS345 --sat

Writes JSON with jitted / host clicks per second, their ratio, whether the click sequences agree
(the jitted simulator against the SciPy oracle, click by click),
and (with --sat) the SAT latency (16x16 grid of single positive clicks on one image).
"""

import argparse
import os
import sys
import time

import jax
import numpy as np
from _output import emit  # benchmarks/_output.py (scripts run from this folder)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", required=True)
  p.add_argument("--checkpoint", default=None)
  p.add_argument("--dataset", default="davis345")
  p.add_argument("--data-dir", required=True)
  p.add_argument("--cache-dir", default=None)
  p.add_argument("--limit", type=int, default=16, help="samples for the jitted loop (0: all)")
  p.add_argument("--host-limit", type=int, default=4, help="samples for the host loop")
  p.add_argument("--max-clicks", type=int, default=20)
  p.add_argument("--batch-size", type=int, default=None)
  p.add_argument("--canvas-multiple", type=int, default=64)
  p.add_argument("--sat", action="store_true", help="also measure SAT latency on the first image")
  p.add_argument("--sat-chunk", type=int, default=None, help="prompts per decode batch for SAT")
  p.add_argument("--repeats", type=int, default=3,
                 help="timed passes of each loop, alternating; the fastest counts")
  p.add_argument("--skip-loops", action="store_true", help="only SAT")
  p.add_argument("--out", default=None, help="JSON output path (also printed)")
  args = p.parse_args(argv)

  from ois_jax.cli import _common
  from ois_jax.data_pipelines import eval_datasets
  from ois_jax.evaluation import evaluator, metrics, reference
  from ois_jax.models import ois

  config, params, _ = _common.load_model(argparse.Namespace(
      config=args.config, checkpoint=args.checkpoint, model=None, set=[]))
  model = ois.build_model(config.model)
  if params is None:  # random weights from the config's seed
    params = ois.init_params(model, jax.random.key(int(config.get("seed", 0))))
  params = jax.device_put(params)
  batch_size = int(args.batch_size or config.eval.batch_size)
  runner = evaluator.ClickLoopRunner(model, config, args.max_clicks)
  dataset = eval_datasets.load(args.dataset, args.data_dir, cache_dir=args.cache_dir)
  n = len(dataset.source) if not args.limit else min(args.limit, len(dataset.source))
  result = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
            "config": config.get("name", args.config), "checkpoint": args.checkpoint,
            "dataset": args.dataset, "max_clicks": args.max_clicks, "batch_size": batch_size}

  if not args.skip_loops:
    # Batches by canvas bucket, as `evaluate` forms them.
    buckets = {}
    for i in range(n):
      try:
        prep = evaluator.prepare(dataset.source[i], runner.input_size)
      except Exception as e:  # noqa: BLE001
        print(f"skip #{i}: {e}", file=sys.stderr)
        continue
      buckets.setdefault(evaluator.canvas_for(prep.gt.shape, args.canvas_multiple), []).append(prep)
    batches = []
    for canvas, items in buckets.items():
      for s in range(0, len(items), batch_size):
        part = items[s:s + batch_size]
        batches.append((len(part), *evaluator.make_batch(part, batch_size, canvas, runner.input_size)))
    batches = [(k, jax.device_put(im), jax.device_put(b)) for k, im, b in batches]

    # Jitted loop (compile first, then time execution only).
    for _, images, batch in batches:
      runner.compiled(params, images, batch)
    # Host loop on the first samples (warm-up compiles encode/predict with one click).
    host_batches, left = [], args.host_limit
    for k, images, batch in batches:
      if left <= 0:
        break
      host_batches.append((k, images, batch, min(k, left)))
      left -= k
    _, images0, batch0 = batches[0]
    reference.host_loop(runner, params, images0, batch0, max_clicks=1)

    # The two loops alternate, `repeats` times each, and the fastest pass of each counts: on a
    # shared machine the load changes from second to second, and the minimum is the run that
    # others disturbed least.
    load_before = os.getloadavg()
    jit_passes, host_passes = [], []
    for _ in range(max(1, args.repeats)):
      seconds, jit_out = 0.0, []
      for k, images, batch in batches:
        out, took = runner.run(params, images, batch)
        seconds += took
        jit_out.append(out)
      jit_passes.append(seconds)
      start = time.perf_counter()
      host_out = [reference.host_loop(runner, params, images, batch) for _, images, batch, _ in host_batches]
      host_passes.append(time.perf_counter() - start)
    load_after = os.getloadavg()

    agree = compared = 0
    for (_, _, _, real), fast, slow in zip(host_batches, jit_out, host_out):
      for row in range(real):  # dummy rows of a partial batch are not compared
        compared += 1
        agree += bool(np.array_equal(fast.ys[row], slow.ys[row]) and
                      np.array_equal(fast.xs[row], slow.xs[row]) and
                      np.array_equal(fast.positive[row], slow.positive[row]))
    # Clicks count the real samples of each batch (not the dummy rows of a partial one).
    jit_clicks = sum(k for k, _, _ in batches) * args.max_clicks
    host_clicks = sum(k for k, _, _, _ in host_batches) * args.max_clicks
    jit_seconds, host_seconds = min(jit_passes), min(host_passes)
    jit_cps = jit_clicks / jit_seconds
    host_cps = host_clicks / host_seconds
    result.update(samples_jitted=jit_clicks // args.max_clicks,
                  samples_host=host_clicks // args.max_clicks,
                  jitted_clicks_per_s=jit_cps, host_clicks_per_s=host_cps,
                  ratio=jit_cps / host_cps, jitted_seconds=jit_seconds, host_seconds=host_seconds,
                  jitted_SPC=jit_seconds / jit_clicks, identical_click_sequences=f"{agree}/{compared}",
                  repeats=len(jit_passes), jitted_pass_seconds=jit_passes,
                  host_pass_seconds=host_passes, cpu_count=os.cpu_count(),
                  load_average_1min=[load_before[0], load_after[0]])

  if args.sat:
    image = dataset.source[0]["image"]
    sat = metrics.sat_latency(reference.make_sat_fn(runner, params, image, 16, args.sat_chunk))
    result.update({k: v for k, v in sat.items()}, SAT_image_hw=list(image.shape[:2]),
                  SAT_paper_s=9.2)

  emit(result, args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
