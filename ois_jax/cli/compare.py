"""`ois-jax compare A/metrics.json B/metrics.json ... --out DIR`: one table and one mIoU plot.

Each argument is a metrics.json written by `ois-jax evaluate` (or the folder holding it).
"""

import argparse

from ois_jax.errors import OISError


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="ois-jax compare", description=__doc__.split("\n")[0])
  p.add_argument("metrics", nargs="+", help="metrics.json files or folders holding one")
  p.add_argument("--out", required=True, help="folder for compare.txt and compare_miou.png")
  args = p.parse_args(argv)
  from ois_jax.evaluation import report
  if not args.metrics:
    raise OISError("give at least one metrics.json")
  table, table_path, plot_path = report.compare(args.metrics, args.out)
  print(table)
  print(f"wrote {table_path}, {plot_path}")
  return 0
