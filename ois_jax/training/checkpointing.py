"""Orbax checkpoints of the train state and the input pipeline's iterator state, saved together.

Layout: `<workdir>/checkpoints/<step>/{state, data}`. Orbax writes each step into a temporary
directory and renames it only when complete, so a process killed mid-save leaves at most an
uncommitted temporary directory that restore ignores (and the next manager removes); the last
good checkpoint is never touched. Retention keeps the `keep` latest steps plus the best step by a
validation metric (lower is better, e.g. NoC90).

`restore_latest` falls back to the newest step that restores: a damaged step (truncated or
corrupt files, a missing item) is moved to `<workdir>/checkpoints_damaged/` (never deleted) and
reported; a step saved for another model (other shapes) is an error instead, never set aside.
"""

import base64
import os
import time

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from ois_jax import _logging, checkpoint
from ois_jax.errors import CheckpointError, first_line


_logging.install_filters()  # periodic saves carry no metrics by design: no warning for each


def encode_data_state(data_state):
  # grain iterators return a dict (IterDataset) or JSON bytes (DataLoader); store both as JSON.
  if isinstance(data_state, (bytes, bytearray)):
    return {"bytes_b64": base64.b64encode(bytes(data_state)).decode("ascii")}
  return {"state": data_state}


def _decode_data_state(stored):
  if stored is None:
    return None
  if "bytes_b64" in stored:
    return base64.b64decode(stored["bytes_b64"])
  return stored.get("state")


class Checkpointer:
  """Saves and restores `(state, data_state)` pairs under `directory`."""

  def __init__(self, directory: str, keep: int = 3, best_metric: str | None = None,
               async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self.best_metric = best_metric or None
    policies = [pp.LatestN(n=max(1, int(keep)))]
    if self.best_metric:
      # reverse=True: lower is better (NoC); steps saved without metrics are left to LatestN.
      policies.append(pp.BestN(get_metric_fn=lambda m: m[self.best_metric], reverse=True, n=1,
                               keep_checkpoints_without_metrics=False))
    best = {}
    if self.best_metric:  # makes orbax write each step's metrics next to it (for restarts)
      best = dict(best_fn=lambda m: m[self.best_metric], best_mode="min",
                  keep_checkpoints_without_metrics=True)
    options = ocp.CheckpointManagerOptions(
        **best, preservation_policy=pp.AnyPreservationPolicy(policies),
        enable_async_checkpointing=async_save, cleanup_tmp_directories=True, create=True)
    self.manager = ocp.CheckpointManager(self.directory, item_names=("state", "data"),
                                         options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def best_step(self) -> int | None:
    """The kept step with the lowest `best_metric`, or None when no step has it."""
    if not self.best_metric:
      return None
    scored = []
    for step in self.manager.all_steps():
      metrics = self.manager.metrics(step) or {}
      if self.best_metric in metrics:
        scored.append((float(metrics[self.best_metric]), step))
    return min(scored)[1] if scored else None

  def save(self, step: int, state, data_state=None, metrics: dict | None = None,
           force: bool = True) -> bool:
    if metrics is not None and self.best_metric and self.best_metric in metrics:
      metrics = {k: float(v) for k, v in metrics.items()}
    else:
      metrics = None
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=ocp.args.JsonSave(encode_data_state(data_state)))
    return self.manager.save(int(step), args=args, metrics=metrics, force=force)

  def restore(self, abstract_state, step: int | None = None):
    """Returns (state, data_state, step); `abstract_state` carries the target shardings."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        abstract_state)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise CheckpointError(f"cannot restore step {step} from {self.directory}: {e}") from e
    return restored.state, _decode_data_state(restored.data), step

  def restore_latest(self, abstract_state, log=print):
    """(state, data_state, step) of the newest step that restores, or None when there is none.

    Damaged steps are set aside (see the module docstring) and named in the log."""
    for step in sorted(self.all_steps(), reverse=True):
      self._check_shapes(abstract_state, step)
      try:
        return self.restore(abstract_state, step)
      except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types for damaged files
        moved = self.set_aside(step)
        log(f"Checkpoint step {step} is damaged and was moved to {moved} "
            f"({type(e).__name__}: {first_line(e)}); trying the next older step")
    return None

  def _check_shapes(self, abstract_state, step: int) -> None:
    """CheckpointError when step `step` holds another model (its stored shapes differ)."""
    try:
      # Reading metadata without handlers makes orbax warn once per item: only the shapes are wanted.
      with checkpoint.absl_warnings_off():
        stored = self.manager.item_metadata(step)["state"]
      stored = getattr(stored, "tree", stored)
      stored_params = stored["params"]
    except Exception:  # noqa: BLE001 - unreadable metadata: a damaged step, handled by restore
      return
    expected = jax.tree_util.tree_flatten_with_path(abstract_state["params"])[0]
    stored_flat = {jax.tree_util.keystr(p): getattr(v, "shape", None)
                   for p, v in jax.tree_util.tree_flatten_with_path(stored_params)[0]}
    wrong = [f"{jax.tree_util.keystr(p)}: {stored_flat.get(jax.tree_util.keystr(p))} saved, "
             f"{tuple(x.shape)} now" for p, x in expected
             if stored_flat.get(jax.tree_util.keystr(p)) not in (None, tuple(x.shape))]
    missing = [jax.tree_util.keystr(p) for p, _ in expected if jax.tree_util.keystr(p) not in stored_flat]
    if wrong or missing:
      detail = "; ".join(wrong[:5] + [f"{k}: not saved" for k in missing[:5]])
      raise CheckpointError(f"checkpoint step {step} in {self.directory} holds another model "
                            f"({len(wrong)} shapes differ, {len(missing)} parameters missing: {detail})")

  def set_aside(self, step: int) -> str:
    """Move step `step` to <workdir>/checkpoints_damaged/<step>-<time> (never delete it)."""
    damaged = os.path.join(os.path.dirname(self.directory), "checkpoints_damaged")
    os.makedirs(damaged, exist_ok=True)
    target = os.path.join(damaged, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.rename(os.path.join(self.directory, str(step)), target)
    self.manager.reload()
    return target

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


