"""One way to stop: Ctrl-C (SIGINT) and SIGTERM end a command with one line saying what was kept.

  with stopping.signals_stop():   # the CLI runs every command inside it
    module.main(argv)

While active, SIGINT and SIGTERM raise `Stopped` (a KeyboardInterrupt) in the main thread, so
every `finally` and `with` block runs on the way out: ois_jax.outputs removes its temporary
files and staging folders, the demo its session folders, the locks are released. The CLI then
prints `message(command, stop)` and exits with 128 + the signal number (130, 143). A command that
has its own way of stopping (train saves a checkpoint first) installs its handlers inside.

`keep(text)` records what a command has finished (outputs.writing and staged_folder record every
file and folder they put in place); `hint(text)` what a rerun does (quickstart: it continues).
"""

import contextlib
import os
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_kept: list[str] = []
_hint: list[str] = []


class Stopped(KeyboardInterrupt):
  """Raised by the handler of SIGINT / SIGTERM; `signum` says which."""

  def __init__(self, signum: int):
    super().__init__(signal.Signals(signum).name)
    self.signum = int(signum)
    self.exit_code = 128 + self.signum


def keep(text: str) -> None:
  _kept.append(text)


def hint(text: str) -> None:
  _hint[:] = [text]


_received: list[int] = []


def received() -> int | None:
  """The signal received since the command started (None: none). A loop that waits (the demo)
  checks it too: a signal that arrives inside a library callback may have its exception swallowed."""
  return _received[0] if _received else None


def _raise(signum, frame):
  if _received:  # the second signal: stop at once
    print(f"\nstopped by {signal.Signals(signum).name} again: exiting at once", file=sys.stderr, flush=True)
    os._exit(128 + int(signum))
  _received.append(int(signum))
  raise Stopped(signum)


def exit_now(code: int) -> None:
  """Exit without the interpreter's teardown: library threads stopped in the middle of a call
  (XLA, gradio's server) may crash or hang there; everything of ours is already cleaned up."""
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


@contextlib.contextmanager
def signals_stop():
  """SIGINT and SIGTERM raise Stopped while the block runs (main thread only)."""
  _kept.clear()
  _hint.clear()
  _received.clear()
  previous = {}
  try:
    for s in SIGNALS:
      previous[s] = signal.signal(s, _raise)
  except ValueError:  # not the main thread: signals stay as they are
    previous.clear()
  hook = sys.unraisablehook
  sys.unraisablehook = _quiet_stops(hook)
  try:
    yield
  finally:
    sys.unraisablehook = hook
    for s, handler in previous.items():
      signal.signal(s, handler)
    _received.clear()  # outside a command nothing is stopping


def _quiet_stops(hook):
  """An unraisable-exception hook that drops our Stopped: raised inside a callback that cannot
  pass it on (XLA's gc callback during export), Python would print it as an "Exception ignored"
  traceback. The stop is still seen (`received()`, and outputs checks it before publishing)."""
  def quiet(unraisable):
    if not isinstance(unraisable.exc_value, Stopped):
      hook(unraisable)
  return quiet


def message(command: str, stop: KeyboardInterrupt) -> tuple[str, int]:
  """(the one line, the exit code) for a command stopped by `stop`."""
  signum = getattr(stop, "signum", None) or received() or signal.SIGINT
  name = signal.Signals(signum).name
  shown = ", ".join(_kept[:5]) + (f" and {len(_kept) - 5} more" if len(_kept) > 5 else "")
  kept = ("kept " + shown if _kept else "no output was finished") + \
      "; partial files and temporary folders were removed"
  line = f"ois-jax {command}: stopped by {name}; {kept}" + (f". {_hint[0]}" if _hint else "")
  return line, 128 + int(signum)
