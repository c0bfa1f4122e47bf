"""The recipe in miniature (`ois-jax quickstart`): the paper's recipe on the embedded data, on CPU.

  Stage 1  a small depth foundation model: DepthAnythingV2 (same ViT + DPT code, a custom small
           size, ois_jax/proj/miniature/configs/depth_tiny_procedural.py) trained from random weights on the procedural
           scenes for relative inverse depth with the scale-and-shift-invariant loss, saved as a
           converted DAv2 checkpoint (DIR/depth/checkpoint); its SSI error on held-out scenes is
           printed (a constant map scores 1) and its depth maps drawn (DIR/depth/heldout_depth.png).
  Stage 2  OIS on top, as the paper trains it (ois_jax/proj/miniature/configs/ois_tiny_procedural.py): the encoder and
           the depth head loaded from stage 1 through `model.depth_checkpoint` and frozen, the
           segmentation head initialised from the depth head, order maps from the model's own
           predicted depth (depth_source='head'). Trained twice with the same budget: the full
           model (DIR/ois) and the use_order=False ablation (DIR/ois_no_order).
  Stage 3  the standard protocol (20 clicks, NoC / mIoU) on held-out procedural scenes of the
           initial model, the trained model and the ablation: the Table-1 layout printed and in
           DIR/table.txt, the mIoU-vs-clicks plot DIR/miou_vs_clicks.png, DIR/metrics.json.

Fixed step counts and seeds, no wall-clock limit: a rerun on the same machine gives the same
figures (another CPU may round floats differently). Running it again on the same DIR reuses
what is done (stage 1, finished training), does again what a Ctrl-C or SIGTERM left unfinished
(stage 1 is trained again, stage 2 resumes from its checkpoint) and evaluates again; a DIR holding
anything else is refused, and so is a DIR another quickstart is running in (ois_jax.locks). The model is one of the procedural world, not of photographs: those need real
DepthAnythingV2 weights and real training data (README).
"""

import copy
import json
import os
import time

from ois_jax import outputs
from ois_jax.errors import ConfigError

SETTINGS_FILE = "quickstart.json"
TABLE_FILE = "table.txt"
LABELS = ("init", "trained", "no order")


def build_configs(depth_steps: int | None = None, steps: int | None = None, depth_overrides=(),
                  overrides=()):
  """(depth config, OIS config) of the recipe with the command-line changes applied."""
  from ois_jax.config import apply_overrides, load_config
  from ois_jax.configs import common
  from ois_jax.proj.miniature.configs import ois_tiny_procedural
  depth = load_config("depth_tiny_procedural", depth_overrides)  # checked against its own schema()
  if depth_steps is not None:
    depth.total_steps = int(depth_steps)
  config = ois_tiny_procedural.link_encoder(ois_tiny_procedural.get_config(), depth)
  apply_overrides(config, overrides)
  linked = ois_tiny_procedural.link_encoder(copy.deepcopy(config), depth).model
  for key in common.SIZE_KEYS:
    if config.model[key] != linked[key]:  # one source for the encoder: the stage-1 model
      raise ConfigError(f"--config.model.{key}: the encoder comes from stage 1; change it with "
                        f"--depth-config.model.{key}")
  if steps is not None:
    config.total_steps = int(steps)
    config.checkpoint_every = max(1, int(steps) // 2)
  return depth, config


def settings_record(depth, config, eval_samples: int, max_clicks: int) -> dict:
  """Everything that decides the figures; a workdir made with other settings is refused."""
  return {"depth": json.loads(depth.to_json(sort_keys=True)),
          "ois": json.loads(config.to_json_best_effort(sort_keys=True)),
          "eval": {"samples": int(eval_samples), "max_clicks": int(max_clicks)}}


def check_workdir(workdir: str, settings: dict) -> bool:
  """True if `workdir` holds a quickstart of the same settings (resume), False if it is new or
  empty; ConfigError if it holds anything else."""
  path = os.path.join(workdir, SETTINGS_FILE)
  if os.path.isfile(path):
    with open(path) as f:
      previous = json.load(f)
    if previous != settings:
      changed = sorted(k for k in settings if previous.get(k) != settings[k])
      raise ConfigError(f"{workdir}: holds a quickstart run with other settings ({', '.join(changed)} "
                     "differ); use another --workdir")
    return True
  from ois_jax import locks
  if os.path.isdir(workdir) and [n for n in os.listdir(workdir) if not locks.is_lock_file(n)]:
    raise ConfigError(f"{workdir}: not empty and not a quickstart run; use another --workdir")
  return False


def variant_config(config, depth_checkpoint: str, use_order: bool):
  c = copy.deepcopy(config)
  c.model.depth_checkpoint = depth_checkpoint
  c.model.use_order = bool(use_order)
  if not use_order:
    c.name = f"{config.name}_no_order"
  return c


def heldout_scenes(config, num: int):
  """`num` held-out scenes of the procedural 'val' split, one object each (evaluation samples)."""
  from ois_jax.data_pipelines import training as data_training
  c = copy.deepcopy(config)
  c.data.procedural_num_val = int(num)
  return data_training.make_eval_source(c)


def initial_params(config, depth_checkpoint: str):
  """The OIS weights stage 2 starts from: the seed's random init with the stage-1 weights loaded."""
  import jax
  from ois_jax.models import ois
  model = ois.build_model(config.model)
  params = ois.init_params(model, jax.random.key(int(config.seed)))
  return model, ois.init_from_depth_checkpoint(params, depth_checkpoint)


def prepare_workdir(workdir: str, settings: dict, log=print) -> str:
  """Refuses a workdir of other settings, records these; returns the absolute path."""
  workdir = os.path.abspath(workdir)
  if check_workdir(workdir, settings):
    log(f"quickstart: continuing the run in {workdir} (same settings)")
  os.makedirs(workdir, exist_ok=True)
  outputs.write_text(os.path.join(workdir, SETTINGS_FILE), json.dumps(settings, indent=1, sort_keys=True),
                     what="quickstart settings")
  return workdir


def stage1(workdir: str, depth, quiet: bool = False, log=print) -> str:
  """Trains (or reuses) the depth model in WORKDIR/depth; returns its checkpoint folder."""
  from ois_jax.proj.miniature import depth_pretrain
  log(f"\n== Stage 1: depth model ({depth.total_steps} steps, DepthAnythingV2 custom "
      f"{depth.model.encoder_embed_dim}-d x {depth.model.encoder_depth} blocks, input {depth.model.input_size}) ==")
  return depth_pretrain.train_depth(depth, os.path.join(workdir, "depth"), quiet=quiet, log=log)["checkpoint"]


def run_name(use_order: bool, seed: int = 0) -> str:
  """Stage-2 folder in a quickstart workdir: ois, ois_no_order (seed 0), ois_seed1, ..."""
  return ("ois" if use_order else "ois_no_order") + (f"_seed{seed}" if seed else "")


def stage2(workdir: str, config, depth_checkpoint: str, use_order: bool = True, quiet: bool = False,
           log=print):
  """Trains (or resumes) OIS on the stage-1 model in WORKDIR/`run_name`; (model, config, params)."""
  import jax
  from ois_jax.models import ois
  from ois_jax.training import trainer
  c = variant_config(config, depth_checkpoint, use_order)
  log(f"\n== Stage 2: OIS {'' if use_order else 'without the order path '}({c.total_steps} steps, "
      f"batch {c.data.batch_size}; encoder and depth head frozen, order maps from the depth head) ==")
  summary = trainer.train(c, os.path.join(workdir, run_name(use_order, int(c.seed))), quiet=quiet, log=log)
  return ois.build_model(c.model), c, jax.device_get(summary["state"]["params"])


def run(workdir: str, depth, config, eval_samples: int = 100, max_clicks: int = 20,
        quiet: bool = False, log=print) -> dict:
  """Stages 1-3 (see the module docstring). Returns the metrics.json record."""
  from ois_jax import locks
  # One quickstart per workdir, locked before anything is written there.
  with locks.WorkdirLock(workdir, "quickstart", log):
    return _run(workdir, depth, config, eval_samples, max_clicks, quiet, log)


def _run(workdir, depth, config, eval_samples, max_clicks, quiet, log) -> dict:
  """`run` with the workdir locked."""
  from ois_jax.evaluation import evaluate, report

  from ois_jax import stopping
  settings = settings_record(depth, config, eval_samples, max_clicks)
  workdir = prepare_workdir(workdir, settings, log)
  stopping.hint("Run the same command again to continue: finished stages are reused, an unfinished "
                "one is done again")
  # Wall seconds, and this process's CPU seconds (the time on an idle machine is about the CPU
  # time divided by the cores used: on a shared machine wall time says more about the others).
  seconds, cpu_seconds = {}, {}
  start, cpu_start = time.time(), time.process_time()

  def lap(name, t0, c0):
    seconds[name] = time.time() - t0
    cpu_seconds[name] = time.process_time() - c0

  depth_ckpt = stage1(workdir, depth, quiet, log)
  lap("stage1", start, cpu_start)
  trained = {}
  for use_order in (True, False):
    t0, c0 = time.time(), time.process_time()
    trained[use_order] = stage2(workdir, config, depth_ckpt, use_order, quiet, log)
    lap("stage2" if use_order else "stage2_no_order", t0, c0)

  t0, c0 = time.time(), time.process_time()
  samples = heldout_scenes(config, eval_samples)
  log(f"\n== Stage 3: standard protocol on {len(samples)} held-out scenes, {max_clicks} clicks ==")
  init_model, init = initial_params(trained[True][1], depth_ckpt)
  runs = ((LABELS[0], init_model, trained[True][1], init), (LABELS[1],) + trained[True],
          (LABELS[2],) + trained[False])
  rows = []
  for label, model, c, params in runs:
    result = evaluate(model, params, c, samples, max_clicks=max_clicks, progress=not quiet)
    rows.append((label, result.metrics))
  lap("stage3", t0, c0)
  lap("total", start, cpu_start)

  table = report.format_table(rows)
  title = f"{config.name}: {len(samples)} held-out procedural scenes"
  log(f"\n{title}, {max_clicks} clicks\n{table}")
  outputs.write_text(os.path.join(workdir, TABLE_FILE), f"{title}, {max_clicks} clicks\n{table}\n",
                     what="table")
  plot = report.plot_curves(os.path.join(workdir, report.PLOT_FILE),
                            [(label, report.miou_curve(m)) for label, m in rows], title=title)
  record = {"metrics": {label: {k: report.jsonable(v) for k, v in m.items()} for label, m in rows},
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "cpu_seconds": {k: round(v, 1) for k, v in cpu_seconds.items()}, "settings": settings}
  outputs.write_text(os.path.join(workdir, report.METRICS_FILE), json.dumps(record, indent=1),
                     what="metrics")
  log(f"plot: {plot}\nmetrics: {os.path.join(workdir, report.METRICS_FILE)}\n"
      f"time: stage 1 {seconds['stage1']:.0f} s, stage 2 {seconds['stage2']:.0f} + "
      f"{seconds['stage2_no_order']:.0f} s, stage 3 {seconds['stage3']:.0f} s, total {seconds['total']:.0f} s "
      f"(CPU time of this process {cpu_seconds['total']:.0f} s)\n"
      f"reproducible: a rerun on this machine gives these metrics exactly; the number of cores "
      f"({len(os.sched_getaffinity(0))} here) and the CPU's vector instructions change the float "
      f"rounding, so another machine's figures differ (ois_jax/proj/miniature/README.md, "
      f"'Reproducibility')")
  return record


def quickstart(workdir: str = "quickstart_run", *, depth_steps: int | None = None,
               steps: int | None = None, eval_samples: int = 100, clicks: int = 20,
               depth_overrides=(), overrides=(), quiet: bool = False, log=print) -> dict:
  """`ois-jax quickstart`: checks the arguments, builds the configs, runs stages 1-3 (`run`)."""
  for flag, value in (("depth-steps", depth_steps), ("steps", steps), ("eval-samples", eval_samples),
                      ("clicks", clicks)):
    if value is not None and value <= 0:
      raise ConfigError(f"--{flag} must be positive, got {value}")
  depth, config = build_configs(depth_steps, steps, depth_overrides, overrides)
  log(f"quickstart: the recipe in miniature in {os.path.abspath(workdir)} (procedural scenes; "
      "a model of that world, not of photographs)")
  return run(workdir, depth, config, eval_samples, clicks, quiet=quiet, log=log)
