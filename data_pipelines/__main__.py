"""Prepare a dataset ahead of time and print what was kept and skipped.

    python -m ois_jax.data_pipelines eval grabcut /data/GrabCut
    python -m ois_jax.data_pipelines train bsds500 /data/BSDS500 --split train
"""

import argparse
import sys

from ois_jax.errors import OISError


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m ois_jax.data_pipelines", description=__doc__.split("\n")[0])
  parser.add_argument("kind", choices=("eval", "train"))
  parser.add_argument("name")
  parser.add_argument("data_dir")
  parser.add_argument("--split", default="train", help="training split (train sets only)")
  parser.add_argument("--cache-dir", default=None)
  parser.add_argument("--min-area", type=int, default=80)
  parser.add_argument("--rebuild", action="store_true", help="prepare again (the raw files changed)")
  args = parser.parse_args(argv)
  try:
    if args.kind == "eval":
      from ois_jax.data_pipelines import eval_datasets
      ds = eval_datasets.load(args.name, args.data_dir, cache_dir=args.cache_dir, rebuild=args.rebuild)
      print(f"{args.name}: {len(ds)} samples in {ds.prepared_dir}")
    else:
      from ois_jax.data_pipelines import train_datasets
      ds = train_datasets.load(args.name, args.data_dir, split=args.split, cache_dir=args.cache_dir,
                               min_area=args.min_area, rebuild=args.rebuild)
      print(ds.summary() + f" ({ds.prepared_dir})")
  except OISError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for name, reason in ds.skipped:
    print(f"  skipped {name}: {reason}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
