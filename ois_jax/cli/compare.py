"""`ois-jax compare A/metrics.json B/metrics.json ... --out DIR`: one table and one mIoU plot.

Each argument is a metrics.json written by `ois-jax evaluate` (or the folder holding it).
"""

import argparse
import os

from ois_jax.errors import OISError


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="ois-jax compare", description=__doc__.split("\n")[0])
  p.add_argument("metrics", nargs="+", help="metrics.json files or folders holding one")
  p.add_argument("--out", required=True, help="folder for compare.txt and compare_miou.png")
  p.add_argument("--overwrite", action="store_true", help="replace an existing comparison in --out")
  args = p.parse_args(argv)
  from ois_jax.evaluation import report
  if not args.metrics:
    raise OISError("give at least one metrics.json")
  if os.path.exists(args.out) and not os.path.isdir(args.out):
    raise OISError(f"--out {args.out}: is a file; give a folder")
  existing = [f for f in (report.COMPARE_TABLE, report.COMPARE_PLOT)
              if os.path.exists(os.path.join(args.out, f))]
  if existing and not args.overwrite:
    raise OISError(f"--out {args.out} already holds {', '.join(existing)}; pass --overwrite or "
                   "another --out")
  table, table_path, plot_path = report.compare(args.metrics, args.out)
  print(table)
  print(f"wrote {table_path}, {plot_path}")
  return 0
