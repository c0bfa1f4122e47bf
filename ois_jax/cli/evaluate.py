"""`ois-jax evaluate`: the standard click-loop benchmark of a model on a dataset.

  ois-jax evaluate --model ois-tiny-procedural --dataset procedural --limit 100
  ois-jax evaluate --checkpoint runs/vits --dataset grabcut --data-dir /data/GrabCut
  ois-jax evaluate --config configs/ois_tiny.py --dataset davis345 --data-dir /data/DAVIS345

The model comes from --checkpoint (an export, a training workdir: its best step, else its latest,
or one step WORKDIR/checkpoints/N), --model (a bundled model) or --config (random weights from the
config seed). `--dataset procedural` is the generated held-out split of the procedural depth
scenes (no folder; the samples carry their depth, so external-depth models evaluate too).
Writes OUT/metrics.json, OUT/ious.csv (per-sample IoU curves and clicks) and OUT/miou_vs_clicks.png,
and prints a table in the layout of the paper's Table 1.
"""

import argparse
import contextlib
import os

from ois_jax import config as config_lib
from ois_jax import outputs
from ois_jax.cli import _common
from ois_jax.errors import OISError


def dataset_names():
  from ois_jax.data_pipelines import eval_datasets
  return eval_datasets.NAMES


class Limited:
  """The first `n` samples of a random-access source."""

  def __init__(self, source, n: int):
    self.source, self.n = source, min(n, len(source))

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    if not 0 <= i < self.n:
      raise IndexError(i)
    return self.source[i]


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="ois-jax evaluate", description=__doc__.split("\n")[0],
                              epilog=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  _common.add_model_arguments(p)
  p.add_argument("--dataset", required=True, help=f"one of: {', '.join(dataset_names())}")
  p.add_argument("--data-dir", help="the dataset's folder (read in place; not for procedural)")
  p.add_argument("--cache-dir", default=None, help="where the tfds builders may prepare data")
  p.add_argument("--rebuild", action="store_true",
                 help="prepare the dataset again although a prepared copy exists")
  p.add_argument("--max-clicks", type=int, default=20)
  p.add_argument("--batch-size", type=int, default=None, help="default: config.eval.batch_size")
  p.add_argument("--limit", type=int, default=None,
                 help="evaluate only the first N samples (procedural: N held-out scenes)")
  p.add_argument("--canvas-multiple", type=int, default=64,
                 help="round canvases up to this many pixels (fewer compiles vs less padding)")
  p.add_argument("--out", default=None, help="output folder (default runs/eval/NAME_DATASET)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing OUT/metrics.json")
  p.add_argument("--no-progress", action="store_true")
  return p


def check_args(args) -> None:
  """Argument problems, found before any model is built."""
  if args.dataset not in dataset_names():
    raise OISError(f"--dataset {args.dataset}: unknown; choose one of {', '.join(dataset_names())}")
  for flag, value in (("--max-clicks", args.max_clicks), ("--limit", args.limit),
                      ("--batch-size", args.batch_size), ("--canvas-multiple", args.canvas_multiple)):
    _common.check_at_least(value, 1, flag)
  if args.dataset == "procedural":
    if args.data_dir:
      raise OISError("--dataset procedural is generated: drop --data-dir")
  elif not args.data_dir:
    raise OISError(f"--dataset {args.dataset} needs --data-dir (the dataset's folder)")
  elif not os.path.isdir(args.data_dir):
    raise OISError(f"--data-dir {args.data_dir}: no such folder")


def label_of(args, config) -> str:
  if args.model:
    return args.model
  if args.checkpoint:
    return os.path.basename(os.path.normpath(args.checkpoint))
  return f"{config.get('name', 'model')} (init)"


def main(argv=None) -> int:
  args = config_lib.parse_with_overrides(build_parser(), argv)
  check_args(args)
  config, params, source = _common.load_model(args)
  _common.check_max_clicks(args.max_clicks, config.model)
  _common.check_probability(config.eval.threshold, "eval.threshold")
  name = args.model or (os.path.basename(os.path.normpath(args.checkpoint)) if args.checkpoint
                        else config.get("name", "model"))
  out_dir = args.out or os.path.join("runs", "eval", f"{name}_{args.dataset}")
  from ois_jax.evaluation import report
  outputs.check_folder(out_dir)
  if os.path.exists(os.path.join(out_dir, report.METRICS_FILE)) and not args.overwrite:
    raise OISError(f"{out_dir} already holds {report.METRICS_FILE}; pass --overwrite or another --out")

  import jax

  from ois_jax.data_pipelines import eval_datasets
  from ois_jax.evaluation import evaluate
  from ois_jax.models import ois
  model = ois.build_model(config.model)
  if params is None:
    params = ois.init_params(model, jax.random.key(int(config.get("seed", 0))))
  else:
    ois.check_params(model, params)
  print(f"weights: {source}")
  dataset = eval_datasets.load(args.dataset, args.data_dir, cache_dir=args.cache_dir,
                               rebuild=args.rebuild, config=config, num_scenes=args.limit)
  if config.model.depth_source == "external" and not dataset.has_depth:
    raise OISError(f"this model takes external depth maps (model.depth_source='external') and "
                   f"{args.dataset} has none; evaluate it on --dataset procedural")
  samples = dataset
  if args.limit is not None and args.dataset != "procedural":
    class _View:
      source = Limited(dataset.source, args.limit)
      skipped = list(dataset.skipped)
    samples = _View()
  result = evaluate(model, params, config, samples, batch_size=args.batch_size,
                    max_clicks=args.max_clicks, progress=not args.no_progress,
                    canvas_multiple=args.canvas_multiple)

  record = report.metrics_record(result, args.dataset, args.checkpoint or args.model,
                                 config.get("name", name), config.to_dict())
  record["config_file"] = args.config
  record["weights"] = source
  label = label_of(args, config)
  created = not os.path.exists(out_dir)
  try:
    metrics_path = report.write_metrics(out_dir, record)
    report.write_curves(out_dir, result)
    plot_path = report.plot_curves(os.path.join(out_dir, report.PLOT_FILE),
                                   [(label, report.miou_curve(record))], f"{args.dataset}: mIoU vs clicks")
  except outputs.WriteError:  # a full disk: no half set of results, no folder of ours left empty
    if created and os.path.isdir(out_dir):
      for leftover in (report.METRICS_FILE, report.CURVES_FILE, report.PLOT_FILE):
        with contextlib.suppress(OSError):
          os.remove(os.path.join(out_dir, leftover))
      with contextlib.suppress(OSError):
        os.rmdir(out_dir)
    raise
  print(f"\n{args.dataset}: {result.metrics['num_samples']} samples, "
        f"{len(result.skipped)} skipped, {args.max_clicks} clicks each")
  print(report.format_table([(label, result.metrics)]))
  for skipped_name, reason in result.skipped:
    print(f"skipped {skipped_name}: {reason}")
  print(f"wrote {metrics_path}, {os.path.join(out_dir, report.CURVES_FILE)}, {plot_path}")
  return 0
