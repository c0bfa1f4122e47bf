"""The training loop: sharded state, input pipeline, checkpoints, validation, logging.

`train(config, workdir)` resumes from the newest intact checkpoint in `workdir` when there is one
(params, optimiser state, step and the input iterator's state), so running the same command
twice continues where the first run stopped. What pods meet is handled:
- SIGTERM (preemption) and SIGINT (Ctrl-C) save a checkpoint at the current step, wait for it to
  commit and stop with `Interrupted` (exit status 128 + signal number from the CLI); a second
  signal stops at once.
- A full disk stops the run within seconds with one clear line; the last committed checkpoint
  stays intact (orbax commits a step by renaming a complete temporary folder).
- A damaged newest checkpoint is set aside and the next older one restored
  (`Checkpointer.restore_latest`).
- A resume with a config that trains something else is refused (`workdir.check_resume`).
The files of the workdir are described in `ois_jax/training/workdir.py`.
"""

import contextlib
import os
import signal
import sys
import time

import jax

from ois_jax import locks
from ois_jax.errors import DataError, OISError
from ois_jax.training import checkpointing, distributed, frozen_cache, sharding, train_step as ts
from ois_jax.training import workdir as workdir_lib


class Interrupted(OISError):
  """Training stopped by a signal after saving a checkpoint at the current step."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.exit_code = 128 + int(signum)


class DiskFull(OISError, OSError):
  """The workdir's disk is full; the last committed checkpoint is intact."""


class NonFinite(OISError, ValueError):
  """The loss, the gradients or the weights of a step became NaN or infinite; nothing of that step
  or later was saved."""


FOLDERS = {"bsds500": "BSDS500"}


def resolve_data_dir(config, log=print) -> None:
  """An empty `data_dir` for BSDS500 falls back to BSDS500/ under `$OIS_DATA_ROOT`, when set."""
  folder = FOLDERS.get(config.data.dataset)
  if config.data_dir or folder is None:
    return
  from ois_jax.data_pipelines import default_data_root
  if default_data_root() is None:
    return
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


class ScalarWriter:
  """TensorBoard scalars written on the calling thread.

  tensorboardX's SummaryWriter writes from a background thread: when that thread dies (a full
  disk), the training thread blocks forever on its queue. Writing here makes a write error an
  exception of the training loop, raised at once.
  """

  def __init__(self, logdir: str):
    from tensorboardX.event_file_writer import EventsWriter
    os.makedirs(logdir, exist_ok=True)
    self._writer = EventsWriter(os.path.join(logdir, "events"))

  def add_scalars(self, step: int, scalars: dict) -> None:
    from tensorboardX import summary
    from tensorboardX.proto import event_pb2
    for name, value in scalars.items():
      self._writer.write_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                               summary=summary.scalar(name, float(value))))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class _Logger:
  """TensorBoard (process 0 only) plus a tqdm progress bar with steps/s and ETA."""

  def __init__(self, workdir, start, total, quiet):
    from tqdm import tqdm
    self.main = jax.process_index() == 0
    self.writer = ScalarWriter(os.path.join(workdir, "tensorboard")) if self.main else None
    self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                    disable=quiet or not self.main, file=sys.stdout)
    self.history = []

  def scalars(self, step, metrics, prefix="train"):
    metrics = {k: float(v) for k, v in metrics.items()}
    self.history.append(dict(metrics, step=step, split=prefix))
    if self.writer is not None:
      self.writer.add_scalars(step, {f"{prefix}/{k}": v for k, v in metrics.items()})
    return metrics

  def flush(self):
    if self.writer is not None:
      self.writer.flush()

  def close(self):
    self.bar.close()
    if self.writer is not None:
      with contextlib.suppress(OSError):  # a full disk is reported by the caller
        self.writer.close()


class StopSignals:
  """While active, SIGINT and SIGTERM set `self.signum` instead of stopping the process; the loop
  checks it after each step. A second signal restores the default behaviour and re-raises."""

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.signum = None
    self._previous = {}

  def _handle(self, signum, frame):
    if self.signum is not None:  # second signal: stop now
      self.__exit__()
      signal.raise_signal(signum)
      return
    self.signum = signum
    print(f"\nReceived {signal.Signals(signum).name}: saving a checkpoint at the current step, "
          "then stopping (send it again to stop at once)", file=sys.stderr, flush=True)

  def __enter__(self):
    try:
      for s in self.SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    except ValueError:  # not the main thread: signals stay as they are
      self._previous.clear()
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous.clear()


def train(config, workdir: str, *, fns=None, make_data=None, make_validation=None,
          quiet: bool = False, log=print, stop_at: int | None = None) -> dict:
  """Trains to `config.total_steps` (resuming if `workdir` has a checkpoint).

  Args:
    fns: the model's functions (`ts.ModelFns`; the OIS model's by default).
    make_data: config -> iterator of host batches with `get_state()` / `set_state()`.
    make_validation: (config, model, fns) -> `validate(params) -> metrics dict` or None.
    stop_at: stop (with a checkpoint) after this step, as a preempted job would; the
      schedule still follows `config.total_steps`.
  Writes `workdir/final` (the last trained step) and `workdir/best` (the best validation step)
  as self-describing checkpoints that `Predictor.from_checkpoint`, `ois-jax evaluate` and
  `ois-jax segment` load (see ois_jax.checkpoint).
  Returns:
    {'start_step', 'final_step', 'history': [...], 'validation': [...], 'workdir', 'state'}.
  Raises:
    Interrupted (after saving) on SIGINT / SIGTERM; DiskFull; ConfigError, DataError,
    CheckpointError for bad input, before anything compiles.
  """
  # Cheap checks first: bad input must fail in seconds, with one line.
  workdir_lib.check_config_values(config)
  workdir = workdir_lib.check_workdir(workdir)
  distributed.initialize(config)  # multi-process: before any device is touched
  log = distributed.main_only(log)
  # One run per workdir; process 0 holds the lock for all the processes of a multi-process run.
  with (locks.WorkdirLock(workdir, "train", log) if distributed.is_main() else contextlib.nullcontext()):
    return _train(config, workdir, fns, make_data, make_validation, quiet, log, stop_at)


def _train(config, workdir, fns, make_data, make_validation, quiet, log, stop_at) -> dict:
  """`train` once the workdir is checked and locked."""
  fns = fns or ts.ois_fns()
  make_data = make_data or default_data
  make_validation = make_validation or default_validation
  resolve_data_dir(config, log)

  mesh = sharding.make_mesh(config)
  total = int(config.total_steps)
  batch_size = int(config.data.batch_size)
  shards = sharding.batch_shards(config, mesh)
  if batch_size % shards:
    raise DataError(f"data.batch_size {batch_size} does not split evenly over the {shards} batch "
                    f"shards of mesh {dict(mesh.shape)}")
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                    keep=int(config.train.keep_checkpoints),
                                    best_metric=config.train.get("best_metric") or None)
  try:
    resuming = bool(ckpt.all_steps())
    if resuming:
      workdir_lib.check_resume(config, workdir, log)
    data = make_data(config)  # before anything compiles: bad data fails in seconds
    model = fns.build_model(config.model)
    cache = (frozen_cache.FrozenOutputCache(model, config, fns, log)
             if config.train.get("cache_frozen_outputs", False) else None)
    depth_checkpoint = config.model.get("depth_checkpoint") or ""
    depth_params = None
    if depth_checkpoint and not resuming:  # on resume the weights come from the checkpoint
      depth_params = workdir_lib.load_initial_weights(depth_checkpoint, workdir, log)
    state, state_shardings, tx, trainable_mask = ts.create_train_state(
        model, config, fns, mesh, jax.random.key(int(config.seed)), depth_params=depth_params)
    del depth_params
    start = 0
    restored = ckpt.restore_latest(state, log) if resuming else None
    if restored is not None:
      state, data_state, start = restored
      if data_state is not None:
        data.set_state(distributed.local_data_state(data_state))
      log(f"Resuming from checkpoint at step {start} in {ckpt.directory}"
          + (f" (already at total_steps={total})" if start >= total else ""))
      if depth_checkpoint:
        log(f"The weights come from that checkpoint; model.depth_checkpoint ({depth_checkpoint}) "
            "was applied at initialisation only")
    else:
      if resuming:
        log(f"No intact checkpoint left in {ckpt.directory}: starting from scratch")
      log(f"Starting training from scratch in {workdir} ({total} steps, {jax.device_count()} "
          f"device(s) in {jax.process_count()} process(es), mesh {dict(mesh.shape)})")
    if jax.process_index() == 0:  # only now: a refused or failed resume must not rewrite the record
      workdir_lib.write_config(config, workdir)
    step_fn = ts.jit_train_step(ts.make_train_step(model, config, fns, tx, trainable_mask),
                                state_shardings, mesh)
    validate = make_validation(config, model, fns)
    with StopSignals() as signals:
      summary = _loop(config, mesh, workdir, ckpt, state, data, step_fn, validate, start, stop_at,
                      signals, quiet, log, cache)
  except Exception as e:  # a full disk surfaces from many places (orbax, TensorBoard, JSON files)
    if workdir_lib.is_disk_full(e):
      raise DiskFull(_disk_full_message(workdir, ckpt)) from None
    raise
  finally:
    _close_quietly(ckpt)
  return summary


def _check_finite(unchecked: list, config, ckpt) -> None:
  """NonFinite naming the first step whose loss, gradients or weights hold NaN or inf; called
  before every log line, validation and save, so no such state reaches a checkpoint or export."""
  codes = jax.device_get([code for _, code in unchecked])
  steps = [s for s, _ in unchecked]
  unchecked.clear()
  bad = next(((s, int(c)) for s, c in zip(steps, codes) if int(c)), None)
  if bad is None:
    return
  step, code = bad
  ckpt.wait()  # the save in flight holds a finite step: let it commit
  kept = ckpt.all_steps()
  last = (f"the last finite checkpoint, step {kept[-1]}, is kept in {ckpt.directory}" if kept
          else "no checkpoint had been saved yet")
  raise NonFinite(f"{ts.describe_nonfinite(code)} became NaN or infinite at step {step} "
                  f"(train.learning_rate={config.train.learning_rate:g}); training stopped and "
                  f"nothing of step {step} was saved ({last}). Lower the learning rate, or "
                  "resume from that checkpoint")


def _disk_full_message(workdir: str, ckpt) -> str:
  steps = ckpt.all_steps() if ckpt is not None else []
  last = (f"the last committed checkpoint, step {steps[-1]}, is intact" if steps
          else "no checkpoint had been committed yet")
  return (f"no space left on the device of {workdir}; training stopped ({last}). Free some "
          "space and run the same command again to resume")


def _close_quietly(ckpt) -> None:
  """Close the checkpoint manager; on a full disk its pending save fails again: already reported."""
  try:
    ckpt.close()
  except Exception as e:  # noqa: BLE001
    if not workdir_lib.is_disk_full(e):
      raise


def _loop(config, mesh, workdir, ckpt, state, data, step_fn, validate, start, stop_at, signals,
          quiet, log, cache=None):
  """The steps from `start + 1` to the end; returns the summary dict. `cache`: a
  `frozen_cache.FrozenOutputCache` (train.cache_frozen_outputs) or None."""
  total = int(config.total_steps)
  batch_size = int(config.data.batch_size)
  rng = jax.random.key(int(config.seed) + 1)  # folded with the step inside the train step
  logger = _Logger(workdir, start, total, quiet)
  log_every = max(1, int(config.train.log_every))
  ckpt_every = max(1, int(config.checkpoint_every))
  eval_every = int(config.eval.get("every", 0))
  validations = []
  pending = []  # device metrics not yet fetched (fetching every step would sync the host)
  unchecked = []  # (step, nonfinite code on the device) not yet read: read before any save
  last_log = (time.time(), start)
  exports = workdir_lib.WeightExports(workdir, config)
  saving = False  # an async save is in flight: it overlaps one step, then must commit
  stop = False
  step = end = start
  try:
    end = total if stop_at is None else min(total, int(stop_at))
    for step in range(start + 1, end + 1):
      batch = next(data)
      if cache is not None:
        batch = cache(batch, state["params"])
      batch = sharding.shard_batch(batch, config, mesh)
      state, metrics = step_fn(state, batch, rng)
      if saving:  # the previous step's save commits now, not whenever orbax gets to it
        ckpt.wait()
        saving = False
      pending.append((step, metrics))
      unchecked.append((step, metrics["nonfinite"]))
      logger.bar.update(1)
      # Read once: a signal arriving later stops the next step. Every process stops at the same
      # step (a preempted pod may signal only some of them), so the saves stay collective.
      stop = distributed.agree_any(signals.signum is not None)
      last = step == end or stop
      validating = validate is not None and ((eval_every and step % eval_every == 0) or step == total)
      saving_now = step % ckpt_every == 0 or last or validating
      if step % log_every == 0 or saving_now:  # one scalar per step, fetched with the loss
        _check_finite(unchecked, config, ckpt)
      if step % log_every == 0 or last:
        for s, m in jax.device_get(pending):
          shown = logger.scalars(s, m)
        pending.clear()
        now = time.time()
        steps_per_s = (step - last_log[1]) / max(now - last_log[0], 1e-9)
        last_log = (now, step)
        logger.scalars(step, {"steps_per_s": steps_per_s,
                              "images_per_s": steps_per_s * batch_size}, prefix="speed")
        logger.flush()
        logger.bar.set_postfix(loss=f"{shown['loss']:.4f}", iou=f"{shown['iou']:.3f}")
      val_metrics = None
      if validating:
        val_metrics = validate(state["params"])
        logger.scalars(step, val_metrics, prefix="val")
        validations.append(dict(val_metrics, step=step))
        log(f"step {step}: validation " + ", ".join(f"{k}={v:.4f}" for k, v in val_metrics.items()))
        exports.maybe_best(step, state["params"], val_metrics, log)
      if saving_now:
        ckpt.save(step, state, distributed.gather_data_state(data.get_state()), metrics=val_metrics)
        saving = True
      if stop:
        break
    ckpt.wait()
    if end > start:
      exports.final(step, state["params"], complete=step == total)
  finally:
    logger.close()
  stats = dict(getattr(data, "stats", {}) or {}, **(cache.stats if cache is not None else {}))
  skipped = {k: v for k, v in stats.items() if k.startswith("skipped") or k == "small_segments"}
  if skipped:
    log(f"input pipeline: {stats.get('records', '?')} records read; skipped and counted: "
        + ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())))
  train_history = [h for h in logger.history if h["split"] == "train"]
  summary = {"start_step": start, "final_step": int(step) if end > start else start,
             "history": train_history, "validation": validations, "data_stats": stats,
             "workdir": workdir}
  if jax.process_index() == 0:
    workdir_lib.write_summary(workdir, summary)
  if stop:
    name = signal.Signals(signals.signum or signal.SIGTERM).name
    raise Interrupted(f"stopped by {name} at step {step}; checkpoint {step} is saved in "
                      f"{ckpt.directory}. Run the same command again to resume",
                      signals.signum or signal.SIGTERM)
  summary["state"] = state
  return summary
