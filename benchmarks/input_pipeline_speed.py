"""Host input-pipeline throughput (images/s) of `data_pipelines.training.make_train_iterator`.

  python benchmarks/input_pipeline_speed.py --dataset procedural --sizes 112,518 --batches 20
  python benchmarks/input_pipeline_speed.py --dataset bsds500 --data-dir ../shared/data/BSDS500

Prints one JSON object: per input size, batches/s and images/s after one warm-up batch.
"""

import argparse
import json
import time

from ois_jax.configs import ois_tiny
from ois_jax.data_pipelines import training


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--dataset", default="procedural")
  p.add_argument("--data-dir", default="../shared/data/BSDS500")
  p.add_argument("--split", default="train")
  p.add_argument("--sizes", default="112,518")
  p.add_argument("--batch-size", type=int, default=8)
  p.add_argument("--batches", type=int, default=20)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--workers", type=int, default=0)
  args = p.parse_args()
  c = ois_tiny.get_config()
  c.data.dataset = args.dataset
  c.data_dir = args.data_dir
  c.data.batch_size = args.batch_size
  c.data.num_threads = args.threads
  c.data.worker_count = args.workers
  source = training.make_source(c, args.split)
  results = {"dataset": args.dataset, "records": len(source), "batch_size": args.batch_size,
             "threads": args.threads, "workers": args.workers, "sizes": {}}
  for size in [int(s) for s in args.sizes.split(",")]:
    c.model.input_size = size
    it = training.make_train_iterator(c, source, seed=0, shard_index=0, shard_count=1)
    next(it)  # warm-up: threads/workers start
    start = time.perf_counter()
    for _ in range(args.batches):
      next(it)
    dt = time.perf_counter() - start
    results["sizes"][size] = {"batches_per_s": args.batches / dt,
                              "images_per_s": args.batches * args.batch_size / dt,
                              "stats": dict(it.stats)}
  print(json.dumps(results, indent=1))


if __name__ == "__main__":
  main()
