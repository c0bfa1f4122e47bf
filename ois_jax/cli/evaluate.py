"""`ois-jax evaluate`: the standard click-loop benchmark of a checkpoint (or a seed-initialised config).

  ois-jax evaluate --config configs/ois_tiny.py --dataset grabcut --data-dir ../shared/data/GrabCut
  ois-jax evaluate --checkpoint runs/ois_vitb/ckpt --dataset davis345 --data-dir .../DAVIS345 --out runs/eval/davis

Writes OUT/metrics.json, OUT/ious.csv (per-sample IoU curves and clicks) and OUT/miou_vs_clicks.png,
and prints a table in the layout of the paper's Table 1.
"""

import argparse
import importlib
import importlib.util
import os

from ois_jax.errors import OISError

DATASETS = ("grabcut", "berkeley", "davis345", "coco_mval", "pascalvoc", "hqseg44k")


def load_config(spec: str):
  """A config from a file path (configs/ois_tiny.py) or a module name (ois_tiny, configs.ois_tiny)."""
  if os.path.isfile(spec):
    module_spec = importlib.util.spec_from_file_location("_ois_eval_config", spec)
    module = importlib.util.module_from_spec(module_spec)
    try:
      module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - a broken config file is a user error
      raise OISError(f"{spec}: cannot load config ({type(e).__name__}: {e})") from None
  else:
    name = spec if spec.startswith("ois_jax.configs.") else f"ois_jax.configs.{spec}"
    try:
      module = importlib.import_module(name.removesuffix(".py"))
    except ImportError:
      raise OISError(f"{spec}: no such config file or module") from None
  if not hasattr(module, "get_config"):
    raise OISError(f"{spec}: config has no get_config()")
  return module.get_config()


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


def parse_args(argv):
  p = argparse.ArgumentParser(prog="ois-jax evaluate", description=__doc__.split("\n")[0])
  p.add_argument("--config", help="config file or name (needed unless --checkpoint is given)")
  p.add_argument("--checkpoint", help="checkpoint directory (without it: weights from the config seed)")
  p.add_argument("--dataset", required=True, choices=DATASETS)
  p.add_argument("--data-dir", required=True, help="the dataset's folder (read in place)")
  p.add_argument("--cache-dir", default=None, help="where the tfds builders may prepare data")
  p.add_argument("--max-clicks", type=int, default=20)
  p.add_argument("--batch-size", type=int, default=None, help="default: config.eval.batch_size")
  p.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples")
  p.add_argument("--canvas-multiple", type=int, default=64,
                 help="round canvases up to this many pixels (fewer compiles vs less padding)")
  p.add_argument("--out", default=None, help="output folder (default runs/eval/CONFIG_DATASET)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing OUT/metrics.json")
  p.add_argument("--no-progress", action="store_true")
  return p.parse_args(argv)


def build(args):
  """(model, params, config, checkpoint label) from --config / --checkpoint."""
  import jax
  import ml_collections

  from ois_jax.models import ois

  config = load_config(args.config) if args.config else None
  params = None
  if args.checkpoint:
    from ois_jax.checkpoint import load_checkpoint
    params, ckpt_config = load_checkpoint(args.checkpoint)
    ckpt_config = ml_collections.ConfigDict(ckpt_config)
    if config is None:
      config = ckpt_config
    else:  # the params must match the architecture they were saved with
      config.model = ckpt_config.model
  if config is None:
    raise OISError("give --config, --checkpoint, or both")
  model = ois.build_model(config.model)
  if params is None:
    params = ois.init_params(model, jax.random.PRNGKey(int(config.get("seed", 0))))
  return model, params, config


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.max_clicks < 1:
    raise OISError(f"--max-clicks must be >= 1, got {args.max_clicks}")
  if not os.path.isdir(args.data_dir):
    raise OISError(f"--data-dir {args.data_dir}: no such folder")
  config_name = args.config or os.path.basename(os.path.normpath(args.checkpoint or "checkpoint"))
  out_dir = args.out or os.path.join(
      "runs", "eval", f"{os.path.basename(config_name).removesuffix('.py')}_{args.dataset}")
  from ois_jax.evaluation import report
  if os.path.exists(os.path.join(out_dir, report.METRICS_FILE)) and not args.overwrite:
    raise OISError(f"{out_dir} already holds {report.METRICS_FILE}; pass --overwrite or another --out")

  model, params, config = build(args)
  from ois_jax.data_pipelines import eval_datasets
  from ois_jax.evaluation import evaluate
  dataset = eval_datasets.load(args.dataset, args.data_dir, cache_dir=args.cache_dir)
  samples = dataset
  if args.limit is not None:
    class _View:
      source = Limited(dataset.source, args.limit)
      skipped = list(getattr(dataset, "skipped", []))
    samples = _View()
  result = evaluate(model, params, config, samples, batch_size=args.batch_size,
                    max_clicks=args.max_clicks, progress=not args.no_progress,
                    canvas_multiple=args.canvas_multiple)

  os.makedirs(out_dir, exist_ok=True)
  record = report.metrics_record(result, args.dataset, args.checkpoint,
                                 config.get("name", config_name), config.to_dict())
  record["config_file"] = args.config
  label = (os.path.basename(os.path.normpath(args.checkpoint)) if args.checkpoint
           else f"{config.get('name', config_name)} (init)")
  metrics_path = report.write_metrics(out_dir, record)
  report.write_curves(out_dir, result)
  curve = report.miou_curve(record)
  plot_path = report.plot_curves(os.path.join(out_dir, report.PLOT_FILE), [(label, curve)],
                                 f"{args.dataset}: mIoU vs clicks")
  print(f"\n{args.dataset}: {result.metrics['num_samples']} samples, "
        f"{len(result.skipped)} skipped, {args.max_clicks} clicks each")
  print(report.format_table([(label, result.metrics)]))
  for name, reason in result.skipped:
    print(f"skipped {name}: {reason}")
  print(f"wrote {metrics_path}, {os.path.join(out_dir, report.CURVES_FILE)}, {plot_path}")
  return 0
