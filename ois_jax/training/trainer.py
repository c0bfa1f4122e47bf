"""The training loop: sharded state, input pipeline, checkpoints, validation, logging.

`train(config, workdir)` resumes from the latest checkpoint in `workdir` when there is one
(params, optimiser state, step and the input iterator's state), so running the same command
twice continues where the first run stopped.
"""

import json
import os
import sys
import time

import jax

from ois_jax.errors import DataError
from ois_jax.training import checkpointing, distributed, sharding, train_step as ts


def write_config(config, workdir: str) -> str:
  path = os.path.join(workdir, "config.json")
  with open(path, "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  return path


FOLDERS = {"bsds500": "BSDS500"}


def resolve_data_dir(config, log=print) -> None:
  """An empty `data_dir` for BSDS500 falls back to BSDS500/ under the default data root."""
  folder = FOLDERS.get(config.data.dataset)
  if config.data_dir or folder is None:
    return
  from ois_jax.data_pipelines import default_data_root
  candidate = str(default_data_root() / folder)
  if os.path.isdir(candidate):
    config.data_dir = candidate
    log(f"config.data_dir is empty: using {candidate}")


def default_data(config):
  """The input iterator of `data_pipelines.training` for `config.data` (lazy import)."""
  from ois_jax.data_pipelines import training as data_training
  # Multi-host: each process reads its own shard of the records and feeds its share of the batch.
  return data_training.make_train_iterator(config, None, int(config.seed),
                                           shard_index=jax.process_index(),
                                           shard_count=jax.process_count())


def default_validation(config, model, fns):
  """`validate(params) -> metrics` on `config.eval.num_samples` held-out samples, or None."""
  if int(config.eval.num_samples) <= 0:
    return None
  from ois_jax.training import validation
  return validation.make_validator(config, model, fns)


class _Logger:
  """TensorBoard (process 0 only) plus a tqdm progress bar with steps/s and ETA."""

  def __init__(self, workdir, start, total, quiet):
    from tqdm import tqdm
    self.main = jax.process_index() == 0
    self.writer = None
    if self.main:
      from tensorboardX import SummaryWriter
      self.writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
    self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                    disable=quiet or not self.main, file=sys.stdout)
    self.history = []

  def scalars(self, step, metrics, prefix="train"):
    metrics = {k: float(v) for k, v in metrics.items()}
    self.history.append(dict(metrics, step=step, split=prefix))
    if self.writer is not None:
      for k, v in metrics.items():
        self.writer.add_scalar(f"{prefix}/{k}", v, step)
    return metrics

  def close(self):
    self.bar.close()
    if self.writer is not None:
      self.writer.close()


def train(config, workdir: str, *, fns=None, make_data=None, make_validation=None,
          quiet: bool = False, log=print, stop_at: int | None = None,
          time_limit_s: float | None = None) -> dict:
  """Trains to `config.total_steps` (resuming if `workdir` has a checkpoint).

  Args:
    fns: the model's functions (`ts.ModelFns()` by default: interface 1).
    make_data: config -> iterator of host batches with `get_state()` / `set_state()`.
    make_validation: (config, model, fns) -> `validate(params) -> metrics dict` or None.
    stop_at: stop (with a checkpoint) after this step, as a preempted job would; the
      schedule still follows `config.total_steps`.
    time_limit_s: also stop (with a checkpoint and a validation) once this much wall time has
      passed since the first step finished compiling.
  Returns:
    {'start_step', 'final_step', 'history': [...], 'validation': [...], 'workdir'}.
  """
  distributed.initialize(config)  # multi-process: before any device is touched
  log = distributed.main_only(log)
  fns = fns or ts.ModelFns()
  make_data = make_data or default_data
  make_validation = make_validation or default_validation
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  resolve_data_dir(config, log)
  if jax.process_index() == 0:
    write_config(config, workdir)

  mesh = sharding.make_mesh(config)
  total = int(config.total_steps)
  batch_size = int(config.data.batch_size)
  shards = sharding.batch_shards(config, mesh)
  if batch_size % shards:
    raise DataError(f"data.batch_size {batch_size} does not split evenly over the {shards} batch "
                    f"shards of mesh {dict(mesh.shape)}")
  data = make_data(config)  # first: bad data fails in seconds, before anything compiles
  model = fns.build_model(config.model)
  state, state_shardings, tx, trainable_mask = ts.create_train_state(
      model, config, fns, mesh, jax.random.key(int(config.seed)))
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                    keep=int(config.train.keep_checkpoints),
                                    best_metric=config.train.get("best_metric") or None)
  start = 0
  latest = ckpt.latest_step()
  if latest is not None:
    state, data_state, start = ckpt.restore(state, latest)
    if data_state is not None:
      data.set_state(distributed.local_data_state(data_state))
    log(f"Resuming from checkpoint at step {start} in {ckpt.directory}"
        + (f" (already at total_steps={total})" if start >= total else ""))
  else:
    log(f"Starting training from scratch in {workdir} ({total} steps, "
        f"{jax.device_count()} device(s) in {jax.process_count()} process(es), mesh {dict(mesh.shape)})")

  step_fn = ts.jit_train_step(ts.make_train_step(model, config, fns, tx, trainable_mask),
                              state_shardings, mesh)
  validate = make_validation(config, model, fns)
  rng = jax.random.key(int(config.seed) + 1)  # folded with the step inside the train step
  logger = _Logger(workdir, start, total, quiet)
  log_every = max(1, int(config.train.log_every))
  ckpt_every = max(1, int(config.checkpoint_every))
  eval_every = int(config.eval.get("every", 0))
  validations = []
  pending = []  # device metrics not yet fetched (fetching every step would sync the host)
  last_log = (time.time(), start)
  step = end = start
  try:
    end = total if stop_at is None else min(total, int(stop_at))
    for step in range(start + 1, end + 1):
      batch = sharding.shard_batch(next(data), config, mesh)
      state, metrics = step_fn(state, batch, rng)
      pending.append((step, metrics))
      logger.bar.update(1)
      if step == start + 1:
        jax.block_until_ready(metrics)
        started = time.time()  # the time limit counts from the compiled first step
      out_of_time = time_limit_s is not None and time.time() - started > time_limit_s
      if time_limit_s is not None:  # clocks differ: all processes follow process 0
        out_of_time = distributed.agree(out_of_time)
      last = step == end or out_of_time
      if step % log_every == 0 or last:
        for s, m in jax.device_get(pending):
          shown = logger.scalars(s, m)
        pending.clear()
        now = time.time()
        steps_per_s = (step - last_log[1]) / max(now - last_log[0], 1e-9)
        last_log = (now, step)
        logger.scalars(step, {"steps_per_s": steps_per_s,
                              "images_per_s": steps_per_s * batch_size}, prefix="speed")
        logger.bar.set_postfix(loss=f"{shown['loss']:.4f}", iou=f"{shown['iou']:.3f}")
      val_metrics = None
      if validate is not None and ((eval_every and step % eval_every == 0) or step == total
                                   or out_of_time):
        val_metrics = validate(state["params"])
        logger.scalars(step, val_metrics, prefix="val")
        validations.append(dict(val_metrics, step=step))
        log(f"step {step}: validation " + ", ".join(f"{k}={v:.4f}" for k, v in val_metrics.items()))
      if step % ckpt_every == 0 or last or val_metrics is not None:
        ckpt.save(step, state, distributed.gather_data_state(data.get_state()), metrics=val_metrics)
      if out_of_time:
        log(f"Stopping at step {step}: time limit of {time_limit_s:.0f}s reached")
        break
  finally:
    ckpt.close()
    logger.close()
  stats = dict(getattr(data, "stats", {}) or {})
  skipped = {k: v for k, v in stats.items() if k.startswith("skipped") or k == "small_segments"}
  if skipped:
    log(f"input pipeline: {stats.get('records', '?')} records read; skipped and counted: "
        + ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())))
  train_history = [h for h in logger.history if h["split"] == "train"]
  summary = {"start_step": start, "final_step": int(step) if end > start else start,
             "history": train_history, "validation": validations, "data_stats": stats,
             "workdir": workdir}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "train_summary.json"), "w") as f:
      json.dump(summary, f, indent=1, default=float)
  summary["state"] = state
  return summary

