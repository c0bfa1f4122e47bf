"""The before/after table of the reliability cases: every hostile-input and fault case found in
two reviews of the command line and the API (171 and 231 cases tried; these are the ones that
failed), reproduced against the real `ois-jax` CLI (one subprocess per command) and the Python
API (the Predictor cases), on the tiny config at 56 px with procedural or generated data.

  python scripts/reliability_cases.py                 # markdown table
  python scripts/reliability_cases.py --json          # the same rows as JSON
  python scripts/reliability_cases.py --json-out t.json   # the table, and the JSON into t.json
  python scripts/reliability_cases.py --only disk,segment   # the groups whose name holds a word
  python scripts/reliability_cases.py --keep runs/cases     # keep the folder the cases ran in

Everything runs in a fresh temporary folder with its own XLA compilation and dataset caches, so the
seconds include the first compile of each program (later commands hit the cache, as a user's
would). About 15-20 minutes on 2 CPU cores. The "before" column is what the review reported (the
report, not a result); the "after" columns are measured: the exit code, what the user reads (the
first stderr line that is not a "[command] ..." progress line; for a command that succeeds, the
stdout line that answers the case) and what the script checked afterwards. `ok` says whether the
case behaves as intended (one clear line, nothing lost or overwritten). A case that cannot be set up here (a tmpfs needs root) says so.
"""

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's ois_jax

import faults  # noqa: E402  (scripts/faults.py: SMALL, train_argv, largest_file, damage_file, wait_for_steps)

TINY = os.path.join(REPO, "configs", "ois_tiny.py")
CELL_CHARS = 160


# --- running commands -----------------------------------------------------------------------------
@dataclasses.dataclass
class Run:
  """One finished command."""
  code: int | None        # exit code (negative: killed by that signal); None: timed out and killed
  stdout: str
  stderr: str
  seconds: float
  rss_mb: float | None    # the command's own peak resident memory

  def error_lines(self) -> list[str]:
    """stderr without progress lines ("[train] ...") and blank lines."""
    return [s.strip() for s in self.stderr.splitlines() if s.strip() and not s.strip().startswith("[")]

  def first_line(self) -> str:
    errors = self.error_lines()
    return errors[0] if errors else ""

  def stdout_line(self, needle: str) -> str:
    return next((s.strip() for s in self.stdout.splitlines() if needle in s), "")

  def traceback(self) -> bool:
    return "Traceback" in self.stderr

  def one_line_error(self, *needles: str) -> bool:
    """Failed, with exactly one error line holding every needle and no traceback."""
    errors = self.error_lines()
    return (self.code not in (0, None) and not self.traceback() and len(errors) == 1
            and all(n in errors[0] for n in needles))


class Command:
  """A started subprocess whose output goes to files (no pipe can fill up and stall it)."""

  def __init__(self, argv, env, cwd=REPO):
    self.out, self.err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    self.start = time.monotonic()
    self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err, env=env, cwd=cwd, text=True)

  def finish(self, timeout: float) -> Run:
    """Waits (killing the command past `timeout` seconds) and reads its peak RSS from wait4."""
    code, rss_mb = None, None
    deadline = time.monotonic() + timeout
    try:
      while True:
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid:
          code, rss_mb = os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024
          self.proc.returncode = code
          break
        if time.monotonic() > deadline:
          self.proc.kill()
          self.proc.wait()
          break
        time.sleep(0.05)
    except ChildProcessError:  # already reaped by Popen.poll()
      code = self.proc.wait()
    seconds = time.monotonic() - self.start
    self.out.seek(0)
    self.err.seek(0)
    run = Run(code, self.out.read(), self.err.read(), seconds, rss_mb)
    self.out.close()
    self.err.close()
    return run


def ois_jax(*args, env, timeout=240.0) -> Run:
  """`ois-jax ARGS` (as `python -m ois_jax`, this interpreter) to the end."""
  return Command([sys.executable, "-m", "ois_jax", *map(str, args)], env).finish(timeout)


def train(workdir, *extra, env, config=TINY, timeout=300.0) -> Run:
  return Command(faults.train_argv(workdir, *extra, config=config), env).finish(timeout)


def committed_steps(workdir) -> list[int]:
  folder = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []


def mount_tmpfs(path: str, size: str, read_only: bool = False) -> str | None:
  """Mounts a tmpfs of `size` on `path`; None, or why it cannot be mounted here."""
  os.makedirs(path, exist_ok=True)
  options = f"{'ro,' if read_only else ''}size={size}"
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], capture_output=True,
                          text=True)
  if result.returncode != 0:
    return f"cannot mount a tmpfs here ({result.stderr.strip() or 'mount failed'}; needs root)"
  return None


def unmount(path: str) -> None:
  subprocess.run(["umount", "-l", path], capture_output=True)


# --- rows -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class After:
  """The measured half of a row."""
  code: int | str | None
  sees: str
  seconds: float
  ok: bool
  checks: list[str] = dataclasses.field(default_factory=list)
  rss_mb: float | None = None
  traceback: bool = False


def after(run: Run, ok: bool, checks=(), sees: str | None = None) -> After:
  code = "timed out (killed)" if run.code is None else run.code
  return After(code, run.first_line() if sees is None else sees, run.seconds, bool(ok), list(checks),
               run.rss_mb, run.traceback())


GROUPS = []  # (key, [(case, before), ...], function returning one After per case)


def group(key: str, *cases: tuple[str, str]):
  def register(fn):
    GROUPS.append((key, list(cases), fn))
    return fn
  return register


# --- what the cases share (made on first use, so --only runs only what it needs) -----------------
class Context:
  def __init__(self, root: str):
    self.root = root
    # Commands keep their compiled programs and prepared datasets here, not in the user's caches.
    self.env = dict(os.environ, OIS_JAX_COMPILATION_CACHE=os.path.join(root, "xla"),
                    OIS_JAX_DATA_CACHE=os.path.join(root, "tfds"), PYTHONUNBUFFERED="1")
    os.environ["OIS_JAX_COMPILATION_CACHE"] = self.env["OIS_JAX_COMPILATION_CACHE"]

  def path(self, *parts) -> str:
    return os.path.join(self.root, *parts)

  def fresh(self, name: str) -> str:
    """A new empty folder (a case's own)."""
    folder = self.path("cases", name)
    os.makedirs(folder)
    return folder

  @functools.cached_property
  def image(self) -> str:
    """A 30 x 40 RGB image."""
    path = self.path("image.png")
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path

  @functools.cached_property
  def tiny_config(self):
    from ois_jax.configs import ois_tiny
    config = ois_tiny.get_config()
    config.model.input_size = 56
    return config

  @functools.cached_property
  def tiny_params(self):
    import jax

    from ois_jax.models import ois
    model = ois.build_model(self.tiny_config.model)
    return jax.device_get(ois.init_params(model, jax.random.key(0)))

  @functools.cached_property
  def checkpoint(self) -> str:
    """The tiny model at 56 px with random weights, saved as an export."""
    from ois_jax.checkpoint import save_checkpoint
    return save_checkpoint(self.path("ckpt"), self.tiny_params, self.tiny_config.to_dict())

  @functools.cached_property
  def misfit_checkpoint(self) -> str:
    """Those params saved with a config that builds another model (prompt_dim 64)."""
    from ois_jax.checkpoint import save_checkpoint
    config = self.tiny_config.copy_and_resolve_references()
    config.model.prompt_dim = 64
    return save_checkpoint(self.path("misfit"), self.tiny_params, config.to_dict())

  @functools.cached_property
  def dav2_checkpoint(self) -> str:
    """DepthAnythingV2-S with random weights (what `ois-jax convert` writes)."""
    from ois_jax.checkpoint import save_checkpoint
    from ois_jax.models.depth import DepthAnythingV2, DepthConfig
    return save_checkpoint(self.path("dav2_vits"), DepthAnythingV2("vits").random_params(0), DepthConfig())

  @functools.cached_property
  def three_steps(self) -> str:
    """A training workdir with checkpoints 1, 2 and 3 (each case works on a copy)."""
    workdir = self.path("three_steps")
    run = train(workdir, "--config.total_steps=3", "--config.checkpoint_every=1", env=self.env)
    if run.code != 0:
      raise RuntimeError(f"training the 3-step workdir failed: {run.first_line()}")
    return workdir

  def copy_of_three_steps(self, name: str) -> str:
    target = os.path.join(self.fresh(name), "run")
    shutil.copytree(self.three_steps, target)
    return target


# --- training faults ------------------------------------------------------------------------------
@group("disk",
       ("train: disk full (3 MB tmpfs workdir, as reported)",
        "train hangs forever (TensorBoard thread dies with ENOSPC)"),
       ("train: disk full (8 MB tmpfs workdir, room for 2 checkpoints)",
        "train hangs forever (TensorBoard thread dies with ENOSPC)"))
def disk_full(ctx: Context):
  rows = []
  for size in ("3m", "8m"):
    mount = ctx.path("cases", f"disk_{size}")
    problem = mount_tmpfs(mount, size)
    if problem:
      rows.append(After("not run", problem, 0.0, False))
      continue
    try:
      workdir = os.path.join(mount, "run")
      run = train(workdir, "--config.total_steps=1000", "--config.checkpoint_every=1", env=ctx.env)
      steps = committed_steps(workdir)
      checks = ["ended" if run.code is not None else "still running after 300 s (killed)",
                f"committed steps {steps}"]
      intact = False
      if steps:
        from ois_jax.checkpoint import load_weights
        try:
          intact = "encoder" in load_weights(os.path.join(workdir, "checkpoints", str(steps[-1]))).params
        except Exception as e:  # noqa: BLE001 - the row reports it
          checks.append(f"step {steps[-1]} does not restore: {e}")
        checks.append(f"step {steps[-1]} restores: {'yes' if intact else 'no'}")
      # With no room for even one checkpoint there is nothing to keep intact: the message must say so.
      ok = run.one_line_error("no space left") and (intact or not steps)
      rows.append(after(run, ok, checks))
    finally:
      unmount(mount)
  return rows


def damage(step_dir: str, how: str) -> str:
  """Damages one saved step as a crash or a bad disk would; returns what was done."""
  if how == "no_state":
    shutil.rmtree(os.path.join(step_dir, "state"))
    return "removed state/"
  path = faults.largest_file(os.path.join(step_dir, "state"))
  faults.damage_file(path, how)
  return f"{how} {os.path.relpath(path, step_dir)}"


@group("damaged",
       ("train: newest checkpoint truncated (data file cut in half)",
        "146-line traceback / clear error but no way forward"),
       ("train: newest checkpoint bit-flipped", "146-line traceback / clear error but no way forward"),
       ("train: newest checkpoint without state/", "146-line traceback / clear error but no way forward"))
def damaged_checkpoint(ctx: Context):
  rows = []
  for how in ("truncate", "bitflip", "no_state"):
    workdir = ctx.copy_of_three_steps(f"damaged_{how}")
    done = damage(os.path.join(workdir, "checkpoints", "3"), how)
    run = train(workdir, "--config.total_steps=4", "--config.checkpoint_every=1", env=ctx.env)
    set_aside_dir = os.path.join(workdir, "checkpoints_damaged")
    set_aside = os.listdir(set_aside_dir) if os.path.isdir(set_aside_dir) else []
    said = run.stdout_line("is damaged")
    resumed = run.stdout_line("Resuming from checkpoint")
    ok = (run.code == 0 and "Checkpoint step 3 is damaged and was moved to" in said
          and "at step 2" in resumed and len(set_aside) == 1 and set_aside[0].startswith("3-")
          and 4 in committed_steps(workdir))
    checks = [done, resumed, f"set aside: {set_aside}", f"committed now {committed_steps(workdir)}"]
    rows.append(after(run, ok, checks, sees=said or run.first_line()))
  return rows


@group("signals",
       ("train: SIGINT mid-training", "SIGTERM exits in 0.2 s with no message, work since last "
        "checkpoint lost"),
       ("train: SIGTERM mid-training", "SIGTERM exits in 0.2 s with no message, work since last "
        "checkpoint lost"))
def signals(ctx: Context):
  rows = []
  for signum in (signal.SIGINT, signal.SIGTERM):
    name = signal.Signals(signum).name
    workdir = os.path.join(ctx.fresh(f"signal_{name}"), "run")
    # No periodic checkpoint at all: whatever is saved, the signal saved it.
    command = Command(faults.train_argv(workdir, "--config.total_steps=100000",
                                        "--config.checkpoint_every=100000", "--config.train.log_every=1"),
                      ctx.env)
    try:
      faults.wait_for_steps(command.proc, os.path.join(workdir, "tensorboard"), timeout=300)
    except AssertionError as e:
      run = command.finish(10)
      rows.append(after(run, False, [f"training did not start: {str(e)[:80]}"]))
      continue
    sent = time.monotonic()
    command.proc.send_signal(signum)
    run = command.finish(120)
    after_signal = time.monotonic() - sent
    line = next((s for s in run.error_lines() if "stopped by" in s), run.first_line())
    stopped_at = None
    if f"stopped by {name} at step " in line:
      stopped_at = int(line.split(f"stopped by {name} at step ")[1].split(";")[0])
    steps = committed_steps(workdir)
    summary_path = os.path.join(workdir, "train_summary.json")
    final = json.load(open(summary_path))["final_step"] if os.path.exists(summary_path) else None
    ok = (run.code == 128 + signum and not run.traceback() and stopped_at is not None
          and steps == [stopped_at] and final == stopped_at)
    checks = [f"exited {after_signal:.1f} s after the signal", f"saved step {stopped_at}",
              f"committed {steps}", f"train_summary final_step {final}"]
    rows.append(after(run, ok, checks, sees=line))
  return rows


@group("resume",
       ("train: resume with another model config (ois_ablation.py:order_first,tiny on an object_first "
        "workdir)", "resumes with no warning"),
       ("train: config.json after that refused resume", "record rewritten (config.json written before "
        "restore)"),
       ("train: resume with safe keys changed (total_steps, train.learning_rate)", "resumes with no warning"),
       ("train: train_summary.json history after that rerun", "record rewritten (history replaced)"))
def resume_with_another_config(ctx: Context):
  workdir = ctx.copy_of_three_steps("resume")
  config_json = os.path.join(workdir, "config.json")
  saved = open(config_json).read()
  refused = train(workdir, "--config.total_steps=4", env=ctx.env,
                  config="configs/ois_ablation.py:order_first,tiny")
  kept = open(config_json).read() == saved
  rows = [after(refused, refused.one_line_error("trained with another config", "model.block_order")),
          after(refused, refused.code != 0 and kept, [f"config.json unchanged: {'yes' if kept else 'NO'}"],
                sees=f"config.json {'unchanged' if kept else 'rewritten'} after the refusal")]
  rerun = train(workdir, "--config.total_steps=4", "--config.train.learning_rate=0.0005",
                "--config.checkpoint_every=1", env=ctx.env)
  said = rerun.stdout_line("safe to change")
  rows.append(after(rerun, rerun.code == 0 and "train.learning_rate" in said and "total_steps" in said,
                    [rerun.stdout_line("Resuming from checkpoint")], sees=said or rerun.first_line()))
  summary = json.load(open(os.path.join(workdir, "train_summary.json")))
  history = [h["step"] for h in summary["history"]]
  total = json.load(open(config_json))["total_steps"]
  rows.append(after(rerun, history == [1, 2, 3, 4] and total == 4, [f"config.json total_steps {total}"],
                    sees=f"train_summary.json history steps {history}"))
  return rows


@group("workdir",
       ("train: read-only workdir", "no check up front"),
       ("train: workdir that is a file", "no check up front"),
       ("train: --config.data.batch_size=0", "fails after 24 s deep inside JAX"),
       ("train: --config.nosuchkey=1", "traceback"))
def bad_workdirs_and_values(ctx: Context):
  rows = []
  read_only = os.path.join(ctx.fresh("read_only"), "ro")
  if os.geteuid() == 0:  # root ignores permission bits: a read-only mount instead
    problem = mount_tmpfs(read_only, "1m", read_only=True)
  else:
    os.makedirs(read_only)
    os.chmod(read_only, 0o555)
    problem = None
  if problem:
    rows.append(After("not run", problem, 0.0, False))
  else:
    try:
      run = train(os.path.join(read_only, "run"), env=ctx.env)
      rows.append(after(run, run.one_line_error("cannot write there")))
    finally:
      if os.geteuid() == 0:
        unmount(read_only)
      else:
        os.chmod(read_only, 0o755)
  a_file = os.path.join(ctx.fresh("a_file"), "a_file")
  open(a_file, "w").write("x")
  run = train(a_file, env=ctx.env)
  rows.append(after(run, run.one_line_error("is a file") and open(a_file).read() == "x"))
  for extra, needle in (("--config.data.batch_size=0", "data.batch_size must be a positive integer"),
                        ("--config.nosuchkey=1", "nosuchkey")):
    workdir = os.path.join(ctx.fresh(extra.split(".")[-1].split("=")[0]), "run")
    run = train(workdir, extra, env=ctx.env)
    nothing = not os.path.exists(os.path.join(workdir, "checkpoints"))
    rows.append(after(run, run.one_line_error(needle) and nothing,
                      [f"nothing trained: {'yes' if nothing else 'NO'}"]))
  return rows


# --- silent wrong results -------------------------------------------------------------------------
@group("predictor",
       ("Predictor.predict: NaN in prev_mask", "accepted silently"),
       ("Predictor.predict: inf in prev_mask", "accepted silently"),
       ('Predictor.predict: string label "False"', "accepted silently"),
       ("Predictor.predict: prev_mask an object array of None", "accepted silently"))
def predictor_inputs(ctx: Context):
  from ois_jax import Predictor
  predictor = Predictor.from_checkpoint(ctx.checkpoint)
  predictor.set_image(np.asarray(Image.open(ctx.image)))
  nan = np.zeros((30, 40), np.float32)
  nan[3, 4] = np.nan
  inf = np.zeros((30, 40), np.float32)
  inf[3, 4] = np.inf
  cases = [([(5, 5, True)], nan), ([(5, 5, True)], inf), ([(5, 5, "False")], None),
           ([(5, 5, True)], np.full((30, 40), None, dtype=object))]
  rows = []
  for clicks, prev_mask in cases:
    start = time.monotonic()
    try:
      predictor.predict(clicks, prev_mask=prev_mask)
      rows.append(After("returned a mask", "accepted silently", time.monotonic() - start, False))
    except Exception as e:  # noqa: BLE001 - which exception is the result
      is_value_error = isinstance(e, ValueError)
      rows.append(After(f"raised {type(e).__name__}", str(e).splitlines()[0], time.monotonic() - start,
                        is_value_error, [f"a ValueError: {'yes' if is_value_error else 'NO'}"]))
  return rows


def write_grabcut(root: str, name: str, mask: np.ndarray) -> None:
  """One GrabCut sample: data_GT/NAME.png and boundary_GT/NAME.bmp (0 / 128 ignore / 255)."""
  for sub in ("data_GT", "boundary_GT"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
  pixels = np.random.default_rng(len(name)).integers(0, 256, mask.shape + (3,), dtype=np.uint8)
  Image.fromarray(pixels).save(os.path.join(root, "data_GT", f"{name}.png"))
  Image.fromarray(mask.astype(np.uint8)).save(os.path.join(root, "boundary_GT", f"{name}.bmp"))


def object_mask(hw=(24, 32)) -> np.ndarray:
  mask = np.zeros(hw, np.uint8)
  mask[6:18, 8:24] = 255
  mask[5, 8:24] = 128  # a band of "ignore", as GrabCut's boundary masks have
  return mask


def samples_evaluated(run: Run) -> int | None:
  line = run.stdout_line("samples,")
  return int(line.split(": ")[1].split()[0]) if line else None


def evaluate_grabcut(ctx: Context, data_dir: str, out: str, *extra) -> Run:
  return ois_jax("evaluate", "--checkpoint", ctx.checkpoint, "--dataset", "grabcut", "--data-dir", data_dir,
                 "--max-clicks", "2", "--no-progress", "--out", out, *extra, env=ctx.env)


@group("stale",
       ("evaluate: raw files changed after the dataset was prepared",
        "reuses a stale prepared dataset after raw files changed"),
       ("evaluate --rebuild on unchanged raw files", "reuses a stale prepared dataset (no way to force)"))
def stale_prepared_dataset(ctx: Context):
  folder = ctx.fresh("stale")
  data = os.path.join(folder, "GrabCut")
  for name in ("a", "b"):
    write_grabcut(data, name, object_mask())
  write_grabcut(data, "c", np.full((24, 32), 128, np.uint8))  # ignore only: skipped as empty
  first = evaluate_grabcut(ctx, data, os.path.join(folder, "e1"))
  write_grabcut(data, "c", object_mask())  # the user fixes the mask
  second = evaluate_grabcut(ctx, data, os.path.join(folder, "e2"))
  forced = evaluate_grabcut(ctx, data, os.path.join(folder, "e3"), "--rebuild")
  counts = [samples_evaluated(r) for r in (first, second, forced)]
  checks = [f"samples before / after the fix: {counts[0]} / {counts[1]}"]
  return [after(second, second.code == 0 and counts[:2] == [2, 3], checks,
                sees=second.stdout_line("samples,")),
          after(forced, forced.code == 0 and counts[2] == 3, [f"samples {counts[2]}"],
                sees=forced.stdout_line("samples,"))]


@group("config_record",
       ("evaluate --config A --checkpoint B (another model)", 'wrote "config": "A" in metrics.json'),
       ("evaluate --config A --checkpoint B (same model)", 'wrote "config": "A" in metrics.json'))
def evaluate_config_and_checkpoint(ctx: Context):
  folder = ctx.fresh("config_record")
  # configs/ois_tiny.py builds the 112 px model; the checkpoint holds the 56 px one.
  other = ois_jax("evaluate", "--config", TINY, "--checkpoint", ctx.checkpoint, "--dataset", "procedural",
                  "--limit", "1", "--out", os.path.join(folder, "other"), env=ctx.env)
  rows = [after(other, other.one_line_error("another config", "input_size: 112 vs 56")
                and not os.path.exists(os.path.join(folder, "other")))]
  # Config A: the same model under another name (its eval section applies, its model is B's).
  config_a = os.path.join(folder, "config_a.py")
  open(config_a, "w").write("from ois_jax.configs import ois_tiny\n\n\ndef get_config():\n"
                            '  c = ois_tiny.get_config()\n  c.name = "config_A"\n'
                            "  c.model.input_size = 56\n  return c\n")
  data = os.path.join(folder, "GrabCut")
  write_grabcut(data, "a", object_mask())
  out = os.path.join(folder, "same")
  same = ois_jax("evaluate", "--config", config_a, "--checkpoint", ctx.checkpoint, "--dataset", "grabcut",
                 "--data-dir", data, "--max-clicks", "2", "--no-progress", "--out", out, env=ctx.env)
  if same.code != 0:
    return rows + [after(same, False)]
  record = json.load(open(os.path.join(out, "metrics.json")))
  fields = {k: record.get(k) for k in ("config", "config_file", "checkpoint", "weights")}
  names_b = record.get("checkpoint") == ctx.checkpoint and ctx.checkpoint in str(record.get("weights"))
  # Compared as JSON (tuples come back as lists).
  model_b = record.get("config_values", {}).get("model") == json.loads(json.dumps(ctx.tiny_config.model.to_dict()))
  # Reported, not judged: the name is --config A's (its eval section applied; its model is B's).
  checks = [f"config_values.model is the checkpoint's: {'yes' if model_b else 'NO'}",
            f"\"config\" is A's name: {'yes' if record.get('config') == 'config_A' else 'no'}"]
  rows.append(after(same, names_b and model_b, checks, sees="metrics.json " + json.dumps(fields)))
  return rows


@group("segment_set",
       ("segment --checkpoint ... --prob-out in a missing folder", "traceback"),
       ("segment --checkpoint ... --config.eval.threshold=T", "ignored the override silently"),
       ("segment --checkpoint ... --config.model.use_order=False", "ignored the override silently"))
def segment_set(ctx: Context):
  folder = ctx.fresh("segment_set")
  base = ["segment", ctx.image, "--checkpoint", ctx.checkpoint, "--click", "5,5,+"]
  prob_out = os.path.join(folder, "new", "p.npy")
  first = ois_jax(*base, "--out", os.path.join(folder, "a.png"), "--prob-out", prob_out, env=ctx.env)
  rows = [after(first, first.code == 0 and os.path.exists(prob_out),
                [f"{os.path.relpath(prob_out, folder)} written: {'yes' if os.path.exists(prob_out) else 'NO'}"],
                sees=first.stdout_line("pixels segmented"))]
  if first.code != 0:
    return rows + [After("not run", "the first segment failed", 0.0, False)] * 2
  prob = np.load(prob_out)
  threshold = float(np.median(prob))
  b_png = os.path.join(folder, "b.png")
  applied = ois_jax(*base, "--out", b_png, f"--config.eval.threshold={threshold}", env=ctx.env)
  follows = applied.code == 0 and np.array_equal(np.asarray(Image.open(b_png)) > 0, prob > threshold)
  rows.append(after(applied, follows, [f"mask == prob > {threshold:.4f}: {'yes' if follows else 'NO'}"],
                    sees=applied.stdout_line("pixels segmented")))
  c_png = os.path.join(folder, "c.png")
  refused = ois_jax(*base, "--out", c_png, "--config.model.use_order=False", env=ctx.env)
  rows.append(after(refused, refused.one_line_error("cannot change the model") and not os.path.exists(c_png)))
  return rows


# --- nothing overwritten --------------------------------------------------------------------------
@group("overwrite",
       ("segment --out an existing file", "overwrites silently"),
       ("compare --out a folder holding a comparison", "overwrites silently"),
       ("quickstart --workdir another run's workdir", "overwrites its config.json"))
def nothing_overwritten(ctx: Context):
  folder = ctx.fresh("overwrite")
  mask = os.path.join(folder, "mask.png")
  open(mask, "wb").write(b"user's file")
  run = ois_jax("segment", ctx.image, "--checkpoint", ctx.checkpoint, "--click", "5,5,+", "--out", mask,
                env=ctx.env)
  intact = open(mask, "rb").read() == b"user's file"
  rows = [after(run, run.one_line_error("already exists; pass --overwrite") and intact,
                [f"file unchanged: {'yes' if intact else 'NO'}"])]
  metrics = write_metrics(folder)
  out = os.path.join(folder, "cmp")
  first = ois_jax("compare", metrics, "--out", out, env=ctx.env)
  table = os.path.join(out, "compare.txt")
  before = open(table).read() if first.code == 0 and os.path.exists(table) else None
  second = ois_jax("compare", metrics, "--out", out, env=ctx.env)
  intact = before is not None and open(table).read() == before
  rows.append(after(second, first.code == 0 and second.one_line_error("pass --overwrite") and intact,
                    [f"first compare exit {first.code}", f"comparison unchanged: {'yes' if intact else 'NO'}"]))
  workdir = ctx.copy_of_three_steps("quickstart")
  saved = open(os.path.join(workdir, "config.json")).read()
  run = ois_jax("quickstart", f"--workdir={workdir}", "--quiet", env=ctx.env)
  intact = open(os.path.join(workdir, "config.json")).read() == saved
  rows.append(after(run, run.one_line_error("not a quickstart run") and intact,
                    [f"config.json unchanged: {'yes' if intact else 'NO'}"]))
  return rows


def write_metrics(folder: str) -> str:
  """A small metrics.json in the layout `ois-jax evaluate` writes."""
  path = os.path.join(folder, "metrics.json")
  json.dump({"mIoU@1": 0.5, "mIoU@2": 0.6, "max_clicks": 2, "dataset": "x"}, open(path, "w"))
  return path


# --- tracebacks that must be one line -------------------------------------------------------------
@group("segment_errors",
       ("segment --out a folder", "traceback"),
       ("segment --out with an unknown extension", "traceback"),
       ("segment --config.nosec.key=1", "traceback"),
       ("segment --config.model.input_size=abc", "traceback"),
       ("segment --checkpoint whose params don't fit its config", "traceback"))
def segment_errors(ctx: Context):
  folder = ctx.fresh("segment_errors")
  os.makedirs(os.path.join(folder, "a_folder"))
  base = ["segment", ctx.image, "--click", "5,5,+"]
  out = ["--out", os.path.join(folder, "m.png")]
  cases = [([*base, "--checkpoint", ctx.checkpoint, "--out", os.path.join(folder, "a_folder")], "is a folder"),
           ([*base, "--checkpoint", ctx.checkpoint, "--out", os.path.join(folder, "m.xyz")],
            "unknown file type"),
           ([*base, "--checkpoint", ctx.checkpoint, *out, "--config.nosec.key=1"], "no such config key nosec.key"),
           ([*base, "--config", TINY, *out, "--config.model.input_size=abc"], "must be of type int"),
           ([*base, "--checkpoint", ctx.misfit_checkpoint, *out], "do not fit this model config")]
  rows = []
  for argv, needle in cases:
    run = ois_jax(*argv, env=ctx.env)
    rows.append(after(run, run.one_line_error(needle)))
  return rows


@group("evaluate_errors",
       ("evaluate --checkpoint a DAv2 checkpoint", "traceback"),
       ("evaluate --checkpoint params that don't fit the config", "traceback"),
       ("evaluate --limit -1", "traceback"))
def evaluate_errors(ctx: Context):
  folder = ctx.fresh("evaluate_errors")
  cases = [(["--checkpoint", ctx.dav2_checkpoint], "not an OIS model"),
           (["--checkpoint", ctx.misfit_checkpoint], "do not fit this model config"),
           (["--config", TINY, "--limit", "-1"], "--limit must be >= 1")]
  rows = []
  for i, (extra, needle) in enumerate(cases):
    run = ois_jax("evaluate", *extra, "--dataset", "procedural", "--out", os.path.join(folder, str(i)),
                  env=ctx.env)
    rows.append(after(run, run.one_line_error(needle)))
  return rows


@group("depth",
       ("depth --checkpoint with bit-flipped params", "traceback"),
       ("depth on a 10000x30 image", ">12 GB RSS in 44 s"))
def depth_cases(ctx: Context):
  folder = ctx.fresh("depth")
  damaged = os.path.join(folder, "damaged")
  shutil.copytree(ctx.dav2_checkpoint, damaged)
  faults.damage_file(faults.largest_file(os.path.join(damaged, "params")), "bitflip", stride=101)
  flipped = ois_jax("depth", ctx.image, "--checkpoint", damaged, "--out", os.path.join(folder, "d.npy"),
                    env=ctx.env)
  rows = [after(flipped, flipped.one_line_error("corrupt or truncated"))]
  strip = os.path.join(folder, "strip.png")
  Image.fromarray(np.zeros((30, 10000, 3), np.uint8)).save(strip)
  run = ois_jax("depth", strip, "--checkpoint", ctx.dav2_checkpoint, "--out", os.path.join(folder, "s.npy"),
                env=ctx.env)
  rss = f"peak RSS {run.rss_mb:.0f} MB" if run.rss_mb else "peak RSS unknown"
  rows.append(after(run, run.one_line_error("10000x30", "limited to") and (run.rss_mb or 0) < 4096, [rss]))
  return rows


@group("compare_file", ("compare --out a file", "traceback"))
def compare_into_a_file(ctx: Context):
  folder = ctx.fresh("compare_file")
  a_file = os.path.join(folder, "a_file")
  open(a_file, "w").write("mine")
  run = ois_jax("compare", write_metrics(folder), "--out", a_file, env=ctx.env)
  intact = open(a_file).read() == "mine"
  return [after(run, run.one_line_error("is a file") and intact, [f"file unchanged: {'yes' if intact else 'NO'}"])]


# --- resource limits ------------------------------------------------------------------------------
@group("clicks", ("segment with a click outside the image", "caught after ~24 s of model building"))
def click_outside(ctx: Context):
  folder = ctx.fresh("clicks")
  run = ois_jax("segment", ctx.image, "--checkpoint", ctx.checkpoint, "--click", "5,900,+", "--out",
                os.path.join(folder, "m.png"), env=ctx.env)
  return [after(run, run.one_line_error("outside the 30x40 image"))]


# --- security -------------------------------------------------------------------------------------
class CodeExecutingPayload:
  """Unpickling this runs a shell command (what a crafted annotation file does)."""

  def __init__(self, marker: str):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


@group("pickle", ("train on coco_lvis whose hannotation.pickle runs code", "ran code"))
def crafted_pickle(ctx: Context):
  folder = ctx.fresh("pickle")
  root = os.path.join(folder, "cocolvis", "train")
  os.makedirs(os.path.join(root, "images"))
  os.makedirs(os.path.join(root, "masks"))
  Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(os.path.join(root, "images", "1.jpg"))
  marker = os.path.join(folder, "pwned")
  with open(os.path.join(root, "hannotation.pickle"), "wb") as f:
    pickle.dump({"1": {"num_instance_masks": 1, "payload": CodeExecutingPayload(marker)}}, f)
  small = [a for a in faults.SMALL if not a.startswith("--config.data.dataset=")]
  argv = [sys.executable, "-m", "ois_jax", "train", "--config", TINY, f"--workdir={folder}/run", *small,
          "--config.data.dataset=coco_lvis", f"--config.data_dir={folder}/cocolvis"]
  run = Command(argv, ctx.env).finish(240)
  ran = os.path.exists(marker)
  return [after(run, run.one_line_error("refusing to load") and not ran,
                [f"payload ran: {'YES' if ran else 'no'}"])]


# --- issue: writes, locks, stops ------------------------------------------------------------------
@contextlib.contextmanager
def full_disk(ctx: Context, name: str):
  """A folder on a 256 kB tmpfs filled to the last byte (yields None when no tmpfs can be mounted)."""
  mount = ctx.path("cases", f"full_{name}")
  if mount_tmpfs(mount, "256k"):
    yield None
    return
  try:
    with open(os.path.join(mount, "filler"), "wb") as f:
      with contextlib.suppress(OSError):
        while True:
          f.write(b"\0" * 4096)
          f.flush()
  except OSError:
    pass
  try:
    yield mount
  finally:
    unmount(mount)


def left_behind(folder: str) -> list[str]:
  """What a failed write left in `folder` (the filler aside)."""
  return sorted(n for n in os.listdir(folder) if n != "filler") if os.path.isdir(folder) else []


@functools.lru_cache(maxsize=None)
def onnx_export(ctx: Context) -> str:
  """The tiny checkpoint exported to ONNX (no verification), for the example's cases."""
  out = ctx.path("onnx_export")
  run = ois_jax("export", "--checkpoint", ctx.checkpoint, "--format", "onnx", "--out", out, "--no-verify",
                env=ctx.env)
  if run.code != 0:
    raise RuntimeError(f"export failed: {run.first_line()}")
  return out


def example(*args, env) -> Run:
  return Command([sys.executable, os.path.join(REPO, "examples", "onnx_segment.py"), *map(str, args)],
                 env).finish(120)


@group("example_inputs",
       ("examples/onnx_segment.py: manifest.json that is not JSON", "raw JSONDecodeError traceback"),
       ("examples/onnx_segment.py: manifest without its postprocessing section", "KeyError traceback"),
       ("examples/onnx_segment.py: manifest input_size that is not the encoder's", "raw onnxruntime error"),
       ("examples/onnx_segment.py: a PNG header claiming 10 gigapixels", "DecompressionBombError traceback"),
       ("examples/onnx_segment.py: a 16-bit grayscale PNG", "every pixel clipped to white"))
def example_inputs(ctx: Context):
  folder = ctx.fresh("example_inputs")
  source = onnx_export(ctx)

  def edited(name, edit):
    copy = os.path.join(folder, name)
    shutil.copytree(source, copy)
    path = os.path.join(copy, "manifest.json")
    text = edit(json.load(open(path)))
    open(path, "w").write(text if isinstance(text, str) else json.dumps(text))
    return copy

  def drop_postprocessing(m):
    m.pop("postprocessing")
    return m

  def wrong_size(m):
    m["preprocessing"]["input_size"] += 14
    return m

  out = os.path.join(folder, "m.png")
  rows = []
  for name, edit, needle in (("not_json", lambda m: "{not json", "not readable JSON"),
                             ("no_post", drop_postprocessing, "lacks postprocessing.threshold"),
                             ("size", wrong_size, "is not the encoder's input")):
    run = example(edited(name, edit), ctx.image, "--click", "5,5,+", "--out", out, env=ctx.env)
    rows.append(after(run, run.one_line_error(needle) and not os.path.exists(out)))
  import struct
  import zlib

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  bomb = os.path.join(folder, "bomb.png")
  with open(bomb, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
  run = example(source, bomb, "--click", "5,5,+", "--out", out, env=ctx.env)
  rows.append(after(run, run.one_line_error("too many pixels")))
  gray = os.path.join(folder, "gray16.png")
  Image.fromarray((np.arange(30 * 40, dtype=np.uint32).reshape(30, 40) * 54).astype(np.uint16)).save(gray)
  sys.path.insert(0, os.path.join(REPO, "examples"))
  import onnx_segment
  pixels = onnx_segment.load_image(gray)
  start = time.monotonic()
  from ois_jax import io
  same = bool(np.array_equal(pixels, io.load_image(gray)))
  white = float((pixels == 255).mean())
  rows.append(After("returned", f"values {pixels.min()}-{pixels.max()}, {white:.0%} white",
                    time.monotonic() - start, same and white < 0.1,
                    [f"equal to ois_jax.io.load_image: {'yes' if same else 'NO'}"]))
  return rows


@group("compile_cache_read_only",
       ("segment with a read-only compilation cache (a read-only tmpfs)",
        'JAX warnings fill the output while ois-jax says "kept in the compilation cache"'))
def compile_cache_read_only(ctx: Context):
  mount = ctx.path("cases", "xla_read_only")
  why = mount_tmpfs(mount, "1m", read_only=True)
  if why:
    return [After("not run", why, 0.0, False)]
  try:
    run = ois_jax("--compilation-cache", mount, "segment", ctx.image, "--checkpoint", ctx.checkpoint,
                  "--click", "5,5,+", "--out", os.path.join(ctx.fresh("compile_cache_read_only"), "m.png"),
                  env=ctx.env)
    notice = [line for line in run.stderr.splitlines() if "compilation cache off" in line]
    warnings = [line for line in run.stderr.splitlines() if "warning" in line.lower()]
    claims = "kept in the compilation cache" in run.stderr
    ok = run.code == 0 and not claims and not warnings and len(notice) == 1
    return [after(run, ok, [f"{len(warnings)} warning line(s) of JAX", f"claims to keep: {'YES' if claims else 'no'}"],
                  sees=notice[0] if notice else "")]
  finally:
    unmount(mount)


@group("writes_full_disk",
       ("segment --out on a full disk (tmpfs)", "traceback; a 0-byte mask.png that a rerun refuses"),
       ("segment --prob-out on a full disk (tmpfs)", "traceback"),
       ("depth --out on a full disk (tmpfs)", "traceback"),
       ("evaluate --out on a full disk (tmpfs)", "traceback"),
       ("export --out on a full disk (tmpfs)", "traceback"),
       ("convert checkpoint -> .safetensors on a full disk (tmpfs)", "traceback"),
       ("convert .safetensors -> checkpoint on a full disk (tmpfs)", "traceback"))
def writes_on_a_full_disk(ctx: Context):
  folder = ctx.fresh("writes_full_disk")
  weights = os.path.join(folder, "dav2.safetensors")
  made = ois_jax("convert", ctx.dav2_checkpoint, weights, env=ctx.env)
  segment = ["segment", ctx.image, "--checkpoint", ctx.checkpoint, "--click", "5,5,+"]
  cases = [
      ("segment", lambda d: [*segment, "--out", os.path.join(d, "mask.png")]),
      ("prob", lambda d: [*segment, "--out", os.path.join(folder, "m.png"), "--overwrite",
                          "--prob-out", os.path.join(d, "p.npy")]),
      ("depth", lambda d: ["depth", ctx.image, "--checkpoint", ctx.dav2_checkpoint, "--input-size", "56",
                           "--out", os.path.join(d, "d.npy")]),
      ("evaluate", lambda d: ["evaluate", "--checkpoint", ctx.checkpoint, "--dataset", "procedural",
                              "--limit", "1", "--max-clicks", "1", "--no-progress", "--out",
                              os.path.join(d, "eval")]),
      ("export", lambda d: ["export", "--checkpoint", ctx.checkpoint, "--format", "jax", "--no-verify",
                            "--out", os.path.join(d, "export")]),
      ("to_file", lambda d: ["convert", ctx.dav2_checkpoint, os.path.join(d, "w.safetensors")]),
      ("to_flax", lambda d: ["convert", weights, os.path.join(d, "ckpt")]),
  ]
  rows = []
  for name, argv in cases:
    if name == "to_flax" and made.code != 0:
      rows.append(after(made, False, ["the .safetensors to convert back was not made"]))
      continue
    with full_disk(ctx, name) as disk:
      if disk is None:
        rows.append(After("not run", "cannot mount a tmpfs here (needs root)", 0.0, False))
        continue
      run = ois_jax(*argv(disk), env=ctx.env)
      left = left_behind(disk)
      rows.append(after(run, run.one_line_error("No space left on device", disk) and not left,
                        [f"left on the disk: {left or 'nothing'}"]))
  return rows


@group("writes_paths",
       ("examples/onnx_segment.py --out its own input photo", "replaces the photo with the mask silently"),
       ("segment --out its own input image --overwrite", "replaces the image with the mask"),
       ("depth --out an existing folder d.npy", "traceback after the model ran"),
       ("depth --png with an unknown extension", "traceback after the work is done"),
       ("convert checkpoint -> an existing folder named x.pth", "traceback"),
       ("export --out below a regular file", "traceback"),
       ("best/, final/ and convert outputs under umask 022", "0700 folders / 0600 files"))
def write_paths(ctx: Context):
  folder = ctx.fresh("writes_paths")
  photo = os.path.join(folder, "photo.png")
  shutil.copy(ctx.image, photo)
  before = open(photo, "rb").read()
  rows = []
  try:
    run = example(onnx_export(ctx), photo, "--click", "5,5,+", "--out", photo, env=ctx.env)
    intact = open(photo, "rb").read() == before
    rows.append(after(run, run.code == 1 and "is the input" in run.first_line() and intact,
                      [f"photo unchanged: {'yes' if intact else 'NO'}"]))
  except RuntimeError as e:
    rows.append(After("not run", str(e), 0.0, False))
  run = ois_jax("segment", photo, "--checkpoint", ctx.checkpoint, "--click", "5,5,+", "--out", photo,
                "--overwrite", env=ctx.env)
  intact = open(photo, "rb").read() == before
  rows.append(after(run, run.one_line_error("is the input") and intact,
                    [f"image unchanged: {'yes' if intact else 'NO'}"]))
  os.makedirs(os.path.join(folder, "d.npy"))
  run = ois_jax("depth", ctx.image, "--checkpoint", ctx.dav2_checkpoint, "--out", os.path.join(folder, "d.npy"),
                env=ctx.env)
  rows.append(after(run, run.one_line_error("is a folder") and run.seconds < 30, [f"{run.seconds:.0f} s"]))
  run = ois_jax("depth", ctx.image, "--checkpoint", ctx.dav2_checkpoint, "--out", os.path.join(folder, "e.npy"),
                "--png", os.path.join(folder, "e.webq"), env=ctx.env)
  nothing = not os.path.exists(os.path.join(folder, "e.npy"))
  rows.append(after(run, run.one_line_error("unknown file type") and nothing,
                    [f"nothing written: {'yes' if nothing else 'NO'}"]))
  os.makedirs(os.path.join(folder, "x.pth"))
  run = ois_jax("convert", ctx.dav2_checkpoint, os.path.join(folder, "x.pth"), env=ctx.env)
  rows.append(after(run, run.one_line_error("is a folder")))
  open(os.path.join(folder, "a_file"), "w").write("x")
  run = ois_jax("export", "--checkpoint", ctx.checkpoint, "--format", "jax",
                "--out", os.path.join(folder, "a_file", "export"), env=ctx.env)
  rows.append(after(run, run.one_line_error("is a file, not a folder")))
  env = dict(ctx.env)
  out = os.path.join(folder, "modes.safetensors")
  run = Command(["sh", "-c", 'umask 022 && exec "$@"', "sh", sys.executable, "-m", "ois_jax", "convert",
                 ctx.dav2_checkpoint, out], env).finish(240)
  workdir = os.path.join(folder, "modes_run")
  trained = Command(["sh", "-c", 'umask 022 && exec "$@"', "sh",
                     *faults.train_argv(workdir, "--config.total_steps=1")], env).finish(300)
  modes = {}
  for path in (out, os.path.join(workdir, "final"), os.path.join(workdir, "final", "ois_checkpoint.json")):
    modes[os.path.relpath(path, folder)] = oct(os.stat(path).st_mode & 0o777) if os.path.exists(path) else "missing"
  ok = (run.code == 0 and trained.code == 0 and modes[os.path.relpath(out, folder)] == "0o644"
        and modes["modes_run/final"] == "0o755" and modes["modes_run/final/ois_checkpoint.json"] == "0o644")
  rows.append(after(trained, ok, [f"{k} {v}" for k, v in modes.items()],
                    sees=f"convert exit {run.code}, train exit {trained.code}"))
  return rows


def output_so_far(command: Command) -> str:
  """What a running command has printed (stdout + stderr), read without moving its file offsets."""
  return "".join(os.pread(f.fileno(), 1 << 20, 0).decode(errors="replace") for f in (command.out, command.err))


def wait_until(command: Command, ready, timeout: float = 240.0) -> bool:
  """Polls `ready()` until it is true (True) or the command ended / the time ran out (False)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and command.proc.poll() is None:
    if ready():
      return True
    time.sleep(0.1)
  return False


def stop_line(run: Run) -> str:
  return next((s for s in run.error_lines() if "stopped by" in s), run.first_line())


def ois_jax_command(*args, env) -> Command:
  return Command([sys.executable, "-m", "ois_jax", *map(str, args)], env)


@group("workdir_lock",
       ("train: a second process on the same workdir", "both run: checkpoints of two runs mixed, or one "
        "dies with an orbax error"),
       ("train: a lock left by a process that is gone (same host)", "(no lock before)"),
       ("train --workdir a folder holding the user's config.json", "config.json overwritten"),
       ("train --workdir an export folder", "accepted; --checkpoint WORKDIR then loads the old weights"),
       ("quickstart: a second process on the same workdir", "both run"))
def workdir_lock(ctx: Context):
  from ois_jax import locks
  rows = []
  workdir = os.path.join(ctx.fresh("lock_train"), "run")
  first = Command(faults.train_argv(workdir, "--config.total_steps=100000", "--config.checkpoint_every=100000",
                                    "--config.train.log_every=1"), ctx.env)
  try:
    faults.wait_for_steps(first.proc, os.path.join(workdir, "tensorboard"), timeout=300)
    second = train(workdir, "--config.total_steps=2", env=ctx.env)
    ok = second.one_line_error(f"is in use by process {first.proc.pid} on host")
    rows.append(after(second, ok and first.proc.poll() is None, ["the first run went on: "
                      + ("yes" if first.proc.poll() is None else "NO")]))
  except AssertionError as e:
    rows.append(After("not run", f"the first run did not start: {str(e)[:80]}", 0.0, False))
  finally:
    first.proc.send_signal(signal.SIGTERM)
    first.finish(120)
  stale = os.path.join(ctx.fresh("lock_stale"), "run")
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  os.makedirs(stale)
  json.dump({"pid": dead.pid, "host": __import__("socket").gethostname(), "command": "train"},
            open(os.path.join(stale, locks.LOCK_FILE), "w"))
  run = train(stale, "--config.total_steps=1", env=ctx.env)
  said = run.stdout_line("took over the lock")
  rows.append(after(run, run.code == 0 and f"process {dead.pid}" in said
                    and not os.path.exists(os.path.join(stale, locks.LOCK_FILE)),
                    ["lock released at the end: " + ("yes" if not os.path.exists(os.path.join(stale, locks.LOCK_FILE))
                                                     else "NO")], sees=said or run.first_line()))
  mine = ctx.fresh("lock_users_config")
  open(os.path.join(mine, "config.json"), "w").write('{"the user": "config"}')
  run = train(mine, env=ctx.env)
  intact = open(os.path.join(mine, "config.json")).read() == '{"the user": "config"}'
  rows.append(after(run, run.one_line_error("not an ois-jax training run") and intact
                    and os.listdir(mine) == ["config.json"], [f"config.json unchanged: {'yes' if intact else 'NO'}"]))
  export = os.path.join(ctx.fresh("lock_export"), "export")
  made = ois_jax("export", "--checkpoint", ctx.checkpoint, "--format", "jax", "--no-verify", "--out", export,
                 env=ctx.env)
  run = train(export, env=ctx.env)
  rows.append(after(run, made.code == 0 and run.one_line_error("is an export")
                    and not os.path.exists(os.path.join(export, "checkpoints"))))
  qs = os.path.join(ctx.fresh("lock_quickstart"), "qs")
  argv = ["quickstart", f"--workdir={qs}", "--quiet", "--depth-steps", "100000"]
  first = ois_jax_command(*argv, env=ctx.env)
  try:
    if not wait_until(first, lambda: os.path.exists(os.path.join(qs, locks.LOCK_FILE))):
      rows.append(After("not run", "the first quickstart did not start", 0.0, False))
    else:
      second = ois_jax(*argv, env=ctx.env)
      rows.append(after(second, second.one_line_error(f"is in use by process {first.proc.pid}")))
  finally:
    first.proc.send_signal(signal.SIGTERM)
    first.finish(120)
  return rows


@group("stops",
       ("evaluate: SIGINT in the click loop", "traceback"),
       ("evaluate: SIGTERM in the click loop", "killed with no word"),
       ("export: SIGTERM while exporting", "staging folder .export.tmp-* left behind"),
       ("depth: SIGINT while the model runs", "traceback"),
       ("demo: SIGTERM while serving", "its /tmp/ois-demo-* folders left behind"),
       ("quickstart: SIGINT at the end of stage 1", "traceback"),
       ("quickstart: the same command again after that", "refuses its own half-written folder (wedged)"))
def stops(ctx: Context):
  rows = []
  for signum in (signal.SIGINT, signal.SIGTERM):
    folder = ctx.fresh(f"stop_evaluate_{signum}")
    out = os.path.join(folder, "eval")
    command = ois_jax_command("evaluate", "--checkpoint", ctx.checkpoint, "--dataset", "procedural", "--limit",
                              "400", "--max-clicks", "20", "--no-progress", "--out", out, env=ctx.env)
    started = wait_until(command, lambda: "weights:" in output_so_far(command))
    time.sleep(3)
    command.proc.send_signal(signum)
    run = command.finish(120)
    ok = (started and run.code == 128 + signum and not run.traceback() and len(run.error_lines()) == 1
          and "stopped by" in stop_line(run) and not os.path.exists(os.path.join(out, "metrics.json")))
    rows.append(after(run, ok, [f"{out.replace(folder, 'OUT')} left: {os.listdir(out) if os.path.isdir(out) else 'nothing'}"],
                      sees=stop_line(run)))
  folder = ctx.fresh("stop_export")
  command = ois_jax_command("export", "--checkpoint", ctx.checkpoint, "--format", "jax", "--out",
                            os.path.join(folder, "export"), env=ctx.env)
  wait_until(command, lambda: "exporting the" in output_so_far(command))
  command.proc.send_signal(signal.SIGTERM)
  run = command.finish(120)
  left = os.listdir(folder)
  rows.append(after(run, run.code == 143 and not run.traceback() and not left and "stopped by SIGTERM" in stop_line(run),
                    [f"left: {left or 'nothing'}"], sees=stop_line(run)))
  folder = ctx.fresh("stop_depth")
  command = ois_jax_command("depth", ctx.image, "--checkpoint", ctx.dav2_checkpoint, "--out",
                            os.path.join(folder, "d.npy"), env=ctx.env)
  wait_until(command, lambda: "compiling and running" in output_so_far(command))
  command.proc.send_signal(signal.SIGINT)
  run = command.finish(120)
  rows.append(after(run, run.code == 130 and not run.traceback() and not os.listdir(folder)
                    and "no output was finished" in stop_line(run), sees=stop_line(run)))
  folder = ctx.fresh("stop_demo")
  tmp = os.path.join(folder, "tmp")
  os.makedirs(tmp)
  import socket
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  command = ois_jax_command("demo", "--checkpoint", ctx.checkpoint, "--port", port, env=dict(ctx.env, TMPDIR=tmp))
  served = wait_until(command, lambda: "serving http" in output_so_far(command), timeout=300)
  during = sorted(n for n in os.listdir(tmp) if n.startswith("ois-demo-"))
  command.proc.send_signal(signal.SIGTERM)
  run = command.finish(60)
  left = sorted(n for n in os.listdir(tmp) if n.startswith("ois-demo-"))
  rows.append(after(run, served and run.code == 143 and not run.traceback() and not left,
                    [f"while serving: {during}", f"left: {left or 'nothing'}"], sees=stop_line(run)))
  qs = os.path.join(ctx.fresh("stop_quickstart"), "qs")
  argv = ["quickstart", f"--workdir={qs}", "--quiet", "--depth-steps", "2", "--steps", "1", "--eval-samples", "2",
          "--clicks", "2"]
  command = ois_jax_command(*argv, env=ctx.env)
  saved = os.path.join(qs, "depth", "checkpoint", "ois_checkpoint.json")
  wait_until(command, lambda: os.path.exists(saved), timeout=400)
  command.proc.send_signal(signal.SIGINT)
  run = command.finish(120)
  rows.append(after(run, run.code == 130 and not run.traceback() and "Run the same command again" in stop_line(run),
                    [f"stage 1 checkpoint saved: {'yes' if os.path.exists(saved) else 'no'}",
                     "summary written: " + ("yes" if os.path.exists(os.path.join(qs, "depth", "depth_summary.json"))
                                            else "no")], sees=stop_line(run)))
  again = ois_jax(*argv, env=ctx.env, timeout=600)
  said = again.stdout_line("Stage 1:")
  rows.append(after(again, again.code == 0 and os.path.exists(os.path.join(qs, "metrics.json")),
                    [said[:100]], sees=again.stdout_line("metrics:") or again.first_line()))
  return rows


@group("cache_dir",
       ("evaluate --cache-dir a file", "traceback"),
       ("evaluate --cache-dir read-only (ro tmpfs)", "traceback"),
       ("evaluate with OIS_JAX_DATA_CACHE below a file", "traceback"))
def cache_dir(ctx: Context):
  folder = ctx.fresh("cache_dir")
  data = os.path.join(folder, "GrabCut")
  write_grabcut(data, "a", object_mask())
  a_file = os.path.join(folder, "a_file")
  open(a_file, "w").write("x")
  base = ["evaluate", "--checkpoint", ctx.checkpoint, "--dataset", "grabcut", "--data-dir", data, "--max-clicks",
          "1", "--no-progress"]
  rows = []
  run = ois_jax(*base, "--cache-dir", a_file, "--out", os.path.join(folder, "e1"), env=ctx.env)
  rows.append(after(run, run.one_line_error("--cache-dir", "is a file") and open(a_file).read() == "x"))
  read_only = os.path.join(folder, "ro")
  problem = mount_tmpfs(read_only, "1m", read_only=True)
  if problem:
    rows.append(After("not run", problem, 0.0, False))
  else:
    try:
      run = ois_jax(*base, "--cache-dir", read_only, "--out", os.path.join(folder, "e2"), env=ctx.env)
      rows.append(after(run, run.one_line_error("--cache-dir", "cannot write there")))
    finally:
      unmount(read_only)
  env = dict(ctx.env, OIS_JAX_DATA_CACHE=os.path.join(a_file, "tfds"))
  run = ois_jax(*base, "--out", os.path.join(folder, "e3"), env=env)
  rows.append(after(run, run.one_line_error("$OIS_JAX_DATA_CACHE", "below the file")))
  return rows


@group("folders_manifest",
       ("export --overwrite over an export holding the user's README.txt", "deletes the user's file"),
       ("export --overwrite over its own export", "(replaced)"))
def folders_manifest(ctx: Context):
  folder = ctx.fresh("folders_manifest")
  out = os.path.join(folder, "export")
  made = ois_jax("export", "--checkpoint", ctx.checkpoint, "--format", "jax", "--no-verify", "--out", out,
                 env=ctx.env)
  open(os.path.join(out, "README.txt"), "w").write("the user's notes")
  run = ois_jax("export", "--checkpoint", ctx.checkpoint, "--format", "jax", "--no-verify", "--out", out,
                "--overwrite", env=ctx.env)
  intact = open(os.path.join(out, "README.txt")).read() == "the user's notes"
  rows = [after(run, made.code == 0 and run.one_line_error("README.txt", "replaces only what ois-jax wrote")
                and intact, [f"README.txt kept: {'yes' if intact else 'NO'}"])]
  os.remove(os.path.join(out, "README.txt"))
  run = ois_jax("export", "--checkpoint", ctx.checkpoint, "--format", "jax", "--no-verify", "--out", out,
                "--overwrite", env=ctx.env)
  rows.append(after(run, run.code == 0, sees=run.stdout_line("manifest.json")))
  return rows


# --- issue: arguments, non-finite, threads, errors ---------------------------------------------------
def api_call(fn) -> After:
  """One Python API call that must raise a ValueError- or OSError-family error."""
  start = time.monotonic()
  try:
    fn()
    return After("returned", "accepted silently", time.monotonic() - start, False)
  except Exception as e:  # noqa: BLE001 - which exception is the result
    family = isinstance(e, (ValueError, OSError))
    return After(f"raised {type(e).__name__}", str(e).splitlines()[0] if str(e) else "",
                 time.monotonic() - start, family,
                 [f"a ValueError or OSError: {'yes' if family else 'NO'}"])


@group("nonfinite",
       ("train: train.learning_rate=1e30", "loss NaN at step 2, training goes on, NaN weights published "
        "as best/"),
       ("segment --checkpoint with NaN weights", '"0 pixels segmented"'),
       ("evaluate --checkpoint with NaN weights", "evaluates NaN weights"))
def non_finite(ctx: Context):
  folder = ctx.fresh("nonfinite")
  workdir = os.path.join(folder, "run")
  run = train(workdir, "--config.total_steps=6", "--config.checkpoint_every=1",
              "--config.train.learning_rate=1e30", env=ctx.env)
  steps = committed_steps(workdir)
  published = [n for n in ("best", "final") if os.path.exists(os.path.join(workdir, n))]
  rows = [after(run, run.one_line_error("became NaN or infinite at step 2", "step 1, is kept")
                and steps == [1] and not published,
                [f"committed steps {steps}", f"best/ or final/ written: {published or 'none'}"])]
  import jax

  from ois_jax import checkpoint
  real_check = getattr(checkpoint, "check_finite", None)
  checkpoint.check_finite = lambda *a: None  # write what a diverged run of old wrote
  try:
    nan_params = jax.tree.map(lambda x: np.full_like(x, np.nan) if np.issubdtype(np.asarray(x).dtype,
                                                                              np.floating) else x,
                              ctx.tiny_params)
    nan_ckpt = checkpoint.save_checkpoint(os.path.join(folder, "nan"), nan_params, ctx.tiny_config.to_dict())
  finally:
    if real_check is not None:
      checkpoint.check_finite = real_check
  seg = ois_jax("segment", ctx.image, "--checkpoint", nan_ckpt, "--click", "5,5,+", "--out",
                os.path.join(folder, "m.png"), env=ctx.env)
  rows.append(after(seg, seg.one_line_error("NaN or infinite") and not os.path.exists(
      os.path.join(folder, "m.png"))))
  ev = ois_jax("evaluate", "--checkpoint", nan_ckpt, "--dataset", "procedural", "--limit", "2",
               "--out", os.path.join(folder, "e"), env=ctx.env)
  rows.append(after(ev, ev.one_line_error("NaN or infinite")))
  return rows


@group("arguments",
       ("segment --threshold nan", "accepted"),
       ("segment --threshold -0.5", "accepted"),
       ("depth --input-size 0", "quietly replaced"),
       ("segment --seed 3 --model ois-tiny-procedural", "accepted and ignored"),
       ("demo --seed 3 --model ois-tiny-procedural", "accepted and ignored"),
       ("evaluate --max-clicks 60", "goes past the click slots with no notice"),
       ("Predictor.set_image: external depth map with one NaN pixel", "all-NaN probabilities"),
       ("Predictor.set_image: external depth map with one inf pixel", "all-NaN probabilities"))
def arguments(ctx: Context):
  folder = ctx.fresh("arguments")
  out = ["--out", os.path.join(folder, "m.png")]
  seg = ["segment", ctx.image, "--click", "5,5,+"]
  cases = [([*seg, "--checkpoint", ctx.checkpoint, "--threshold", "nan", *out], "--threshold must be in [0, 1]"),
           ([*seg, "--checkpoint", ctx.checkpoint, "--threshold", "-0.5", *out], "--threshold must be in [0, 1]"),
           (["depth", ctx.image, "--checkpoint", ctx.dav2_checkpoint, "--input-size", "0", "--out",
             os.path.join(folder, "d.npy")], "--input-size 0 is below the 14-pixel patch size"),
           ([*seg, "--model", "ois-tiny-procedural", "--seed", "3", *out], "--seed chooses random weights"),
           (["demo", "--model", "ois-tiny-procedural", "--seed", "3"], "--seed chooses random weights"),
           (["evaluate", "--config", TINY, "--dataset", "procedural", "--max-clicks", "60", "--out",
             os.path.join(folder, "e")], "at most 24 clicks are sure to reach it")]
  rows = []
  for argv, needle in cases:
    run = ois_jax(*argv, env=ctx.env)
    rows.append(after(run, run.one_line_error(needle)))
  import jax

  from ois_jax import Predictor
  config = ctx.tiny_config.copy_and_resolve_references()
  config.model.depth_source = "external"
  from ois_jax.models import ois
  model = ois.build_model(config.model)
  shapes = jax.eval_shape(lambda k: ois.init_params(model, k), jax.random.key(0))
  predictor = Predictor.from_config(config, params=jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes))
  for value in (np.nan, np.inf):
    depth = np.ones((30, 40), np.float32)
    depth[3, 4] = value
    rows.append(api_call(lambda: predictor.set_image(np.zeros((30, 40, 3), np.uint8), depth=depth)))
  return rows


@group("api_errors",
       ("Predictor.predict(clicks=None)", "TypeError"),
       ("load_image(None)", "TypeError"),
       ("Predictor.from_checkpoint(a missing folder)", "CheckpointError outside ValueError/OSError"),
       ("Predictor.from_config(None)", "TypeError"))
def api_errors(ctx: Context):
  from ois_jax import Predictor
  from ois_jax.io import load_image
  predictor = Predictor.from_checkpoint(ctx.checkpoint)
  predictor.set_image(np.asarray(Image.open(ctx.image)))
  return [api_call(lambda: predictor.predict(clicks=None)), api_call(lambda: load_image(None)),
          api_call(lambda: Predictor.from_checkpoint(ctx.path("no_such_checkpoint"))),
          api_call(lambda: Predictor.from_config(None))]


@group("threads",
       ("one Predictor, two threads: predict after the other thread's set_image",
        "returned a mask for the wrong image"),
       ("a Predictor per thread (same model and weights), interleaved", "n/a (new)"))
def threads(ctx: Context):
  import threading

  from ois_jax import Predictor
  shared = Predictor.from_checkpoint(ctx.checkpoint)
  a = np.asarray(Image.open(ctx.image))
  b = 255 - a[:, ::-1]
  shared.set_image(b)
  reference_b = shared.predict([(10, 10, True)])
  shared.set_image(a)
  reference_a = shared.predict([(10, 10, True)])
  other = threading.Thread(target=lambda: shared.set_image(b))
  other.start()
  other.join()
  row = api_call(lambda: shared.predict([(10, 10, True)]))
  rows = [row]
  start, results, barrier = time.monotonic(), {}, threading.Barrier(2)

  def work(name, image):
    mine = Predictor(shared.model, shared.params, shared.config)  # shares the compiled programs
    for _ in range(3):
      mine.set_image(image)
      barrier.wait(60)
      results.setdefault(name, []).append(mine.predict([(10, 10, True)]))
  workers = [threading.Thread(target=work, args=item) for item in (("a", a), ("b", b))]
  for w in workers:
    w.start()
  for w in workers:
    w.join(120)
  right = all(np.array_equal(p, ref) for name, ref in (("a", reference_a), ("b", reference_b))
              for p in results.get(name, [None]))
  rows.append(After("returned masks", f"each thread got its own image's mask: {'yes' if right else 'NO'}",
                    time.monotonic() - start, right))
  return rows


@group("validation",
       ("train --config a PNG", "traceback"),
       ("train --config whose get_config() returns None", "traceback"),
       ("segment --checkpoint whose metadata says input_size 'abc'", "traceback"),
       ("depth --checkpoint whose metadata says vitb for vits weights", "traceback"),
       ("compare the quickstart's own metrics.json", "cannot read it"))
def validation_first(ctx: Context):
  folder = ctx.fresh("validation")
  rows = []
  run = ois_jax("train", "--config", ctx.image, "--workdir", os.path.join(folder, "w1"), env=ctx.env)
  rows.append(after(run, run.one_line_error("not a Python config file")))
  none_config = os.path.join(folder, "none.py")
  open(none_config, "w").write("def get_config():\n  return None\n")
  run = ois_jax("train", "--config", none_config, "--workdir", os.path.join(folder, "w2"), env=ctx.env)
  rows.append(after(run, run.one_line_error("get_config() returned NoneType")))

  def edited(source, name, edit):
    copy = os.path.join(folder, name)
    shutil.copytree(source, copy)
    path = os.path.join(copy, "ois_checkpoint.json")
    record = json.load(open(path))
    edit(record["config"])
    json.dump(record, open(path, "w"))
    return copy
  bad = edited(ctx.checkpoint, "edited", lambda c: c["model"].update(input_size="abc"))
  run = ois_jax("segment", ctx.image, "--checkpoint", bad, "--click", "5,5,+", "--out",
                os.path.join(folder, "m.png"), env=ctx.env)
  rows.append(after(run, run.one_line_error("metadata is edited or damaged", "model.input_size")))
  bad = edited(ctx.dav2_checkpoint, "edited_dav2", lambda c: c.update(variant="vitb"))
  run = ois_jax("depth", ctx.image, "--checkpoint", bad, "--out", os.path.join(folder, "d.npy"), env=ctx.env)
  rows.append(after(run, run.one_line_error("do not fit the vitb model")))
  quickstart = os.path.join(folder, "quickstart")
  os.makedirs(quickstart)
  metrics = {f"mIoU@{k}": 0.2 * k for k in range(1, 4)}
  json.dump({"metrics": {"OIS (init)": metrics, "OIS": metrics, "OIS without order": metrics},
             "seconds": {}, "settings": {}}, open(os.path.join(quickstart, "metrics.json"), "w"))
  run = ois_jax("compare", os.path.join(quickstart, "metrics.json"), "--out", os.path.join(folder, "cmp"),
                env=ctx.env)
  rows.append(after(run, run.code == 0 and "OIS without order [quickstart]" in run.stdout,
                    sees=run.stdout_line("OIS without order")))
  return rows


@group("demo_address",
       ("demo --port a port in use", '"serving http://..." then a traceback'),
       ("demo --host an address the machine lacks", 'misleading "empty port" traceback'))
def demo_address(ctx: Context):
  import socket
  rows = []
  with socket.socket() as holder:
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    run = ois_jax("demo", "--config", TINY, "--port", port, env=ctx.env)
  rows.append(after(run, run.one_line_error("already in use") and "serving" not in run.stdout))
  run = ois_jax("demo", "--config", TINY, "--host", "192.0.2.77", env=ctx.env)
  rows.append(after(run, run.one_line_error("not an address of this machine") and "serving" not in run.stdout))
  return rows


@group("quiet",
       ("train: disk full (3 MB tmpfs): stderr", "190 lines of orbax thread tracebacks before the line"),
       ("train --verbose: disk full (3 MB tmpfs): stderr", "n/a (new)"))
def quiet_disk_full(ctx: Context):
  rows = []
  for verbose in (False, True):
    mount = ctx.path("cases", f"quiet_{'verbose' if verbose else 'plain'}")
    problem = mount_tmpfs(mount, "3m")
    if problem:
      rows.append(After("not run", problem, 0.0, False))
      continue
    try:
      argv = faults.train_argv(os.path.join(mount, "run"), "--config.total_steps=1000",
                               "--config.checkpoint_every=1", config=TINY)
      if verbose:
        argv.insert(argv.index("train"), "--verbose")
      run = Command(argv, ctx.env).finish(300)
      lines = run.error_lines()
      checks = [f"{len(lines)} stderr line(s) besides [train] progress",
                f"traceback: {'yes' if run.traceback() else 'no'}"]
      ok = (run.code == 1 and (len(lines) > 1 and run.traceback() if verbose
                               else run.one_line_error("no space left")))
      rows.append(after(run, ok, checks, sees=lines[-1] if lines else ""))
    finally:
      unmount(mount)
  return rows


# --- the table ------------------------------------------------------------------------------------
def rows_of(root: str, only: list[str], log) -> list[dict]:
  ctx = Context(root)
  rows = []
  for key, cases, fn in GROUPS:
    if only and not any(word in key for word in only):
      continue
    start = time.monotonic()
    try:
      results = fn(ctx)
    except Exception as e:  # noqa: BLE001 - a case that cannot run is a row, not the end of the table
      results = [After("not run", f"the script failed: {type(e).__name__}: {e}", 0.0, False)] * len(cases)
    for (case, before), result in zip(cases, results, strict=True):
      rows.append({"case": case, "before": before, "exit_code": result.code,
                   "sees": tidy(result.sees, root), "checks": [tidy(c, root) for c in result.checks],
                   "seconds": round(result.seconds, 1), "ok": result.ok, "traceback": result.traceback,
                   "rss_mb": None if result.rss_mb is None else round(result.rss_mb)})
    log(f"[cases] {key}: {sum(r['ok'] for r in rows[-len(cases):])}/{len(cases)} as asked, "
        f"{time.monotonic() - start:.0f} s")
  return rows


def tidy(text: str, root: str) -> str:
  """One line, the temporary folder written TMP, at most CELL_CHARS characters."""
  text = " ".join(str(text).replace(root, "TMP").split())
  return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 3] + "..."


def markdown(rows: list[dict], seconds: float) -> str:
  def cell(text) -> str:
    return str(text).replace("|", "\\|")

  lines = ["| case | before (as reported) | after: exit code | after: what the user sees | seconds |",
           "|---|---|---|---|---|"]
  for r in rows:
    sees = f"`{cell(r['sees'])}`" if r["sees"] else ""
    if r["checks"]:
      sees += " (" + "; ".join(cell(c) for c in r["checks"]) + ")"
    if not r["ok"]:
      sees += " **NOT AS ASKED**"
    lines.append(f"| {cell(r['case'])} | {cell(r['before'])} | {r['exit_code']} | {sees} | {r['seconds']} |")
  lines.append("")
  lines.append(f"{sum(r['ok'] for r in rows)} of {len(rows)} cases behave as intended; "
               f"{seconds:.0f} s in all.")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--json", action="store_true", help="print the rows as JSON")
  parser.add_argument("--only", default="", help="comma-separated words: run the groups whose name holds "
                      f"one ({', '.join(key for key, _, _ in GROUPS)})")
  parser.add_argument("--json-out", default=None, help="also write the JSON to this file")
  parser.add_argument("--keep", default=None, help="run in this new folder and keep it")
  args = parser.parse_args(argv)
  only = [w for w in args.only.split(",") if w]
  if args.keep:
    if os.path.exists(args.keep):
      print(f"--keep {args.keep}: already exists; give a new folder", file=sys.stderr)
      return 1
    os.makedirs(args.keep)
    root = os.path.abspath(args.keep)
  else:
    root = tempfile.mkdtemp(prefix="ois_cases_")
  start = time.monotonic()
  try:
    rows = rows_of(root, only, lambda m: print(m, file=sys.stderr, flush=True))
  finally:
    if not args.keep:
      shutil.rmtree(root, ignore_errors=True)
  seconds = time.monotonic() - start
  record = json.dumps({"rows": rows, "seconds": round(seconds, 1), "as_asked": sum(r["ok"] for r in rows),
                       "cases": len(rows)}, indent=2)
  if args.json_out:
    with open(args.json_out, "w") as f:
      f.write(record + "\n")
  if args.json:
    print(record)
  else:
    print(markdown(rows, seconds))
  return 0


if __name__ == "__main__":
  sys.exit(main())
