"""One lock per workdir (`ois-jax train`, `ois-jax quickstart`): WORKDIR/.ois-jax.lock.

  with locks.WorkdirLock(workdir, "train"):
    ...   # nothing else runs on this workdir meanwhile

The lock file holds {"pid", "host", "command", "started"} and is created atomically (written under
a temporary name, then hard-linked to its name: the link fails when the name exists), before
anything else is written to the workdir. A second process is refused with one line naming the
holder's pid and host. A lock left by a process that is gone (same host, no such pid) is
recognised and taken over (renamed away first, so that of two processes taking it over at once
one wins). A lock from another host cannot be checked: the message says which file to remove.
In a multi-process run only process 0 takes it (the others write nothing of their own there).
"""

import contextlib
import json
import os
import socket
import time

from ois_jax.errors import CheckpointError, OISError

LOCK_FILE = ".ois-jax.lock"


class WorkdirLocked(OISError, OSError):
  """Another process (named in the message) is using the workdir."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's process: alive
    return True
  return True


def read(workdir: str) -> dict | None:
  """The holder's record, {} for an unreadable lock file, None when there is no lock."""
  try:
    with open(os.path.join(workdir, LOCK_FILE)) as f:
      record = json.load(f)
    return record if isinstance(record, dict) else {}
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}


class WorkdirLock:
  """Context manager holding WORKDIR/.ois-jax.lock; `log(message)` hears a stale lock taken over."""

  def __init__(self, workdir: str, command: str, log=print):
    self.workdir, self.command, self.log = os.path.abspath(workdir), command, log
    self.path = os.path.join(self.workdir, LOCK_FILE)
    self.held = False

  def acquire(self) -> "WorkdirLock":
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
      os.makedirs(self.workdir, exist_ok=True)
      tmp = os.path.join(self.workdir, f"{LOCK_FILE}.{record['host']}.{record['pid']}")
      with open(tmp, "w") as f:
        json.dump(record, f)
    except OSError as e:
      raise CheckpointError(f"--workdir {self.workdir}: cannot write there ({e.strerror})") from None
    try:
      for _ in range(3):
        try:
          os.link(tmp, self.path)
          self.held = True
          return self
        except FileExistsError:
          self._take_over_if_stale()
      raise WorkdirLocked(f"--workdir {self.workdir}: cannot take the lock {self.path}")
    finally:
      with contextlib.suppress(OSError):
        os.remove(tmp)

  def _take_over_if_stale(self) -> None:
    holder = read(self.workdir)
    if holder is None:  # released meanwhile: try again
      return
    pid, host = holder.get("pid"), holder.get("host")
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
      stale = f"{self.path}.stale-{pid}"
      try:
        os.rename(self.path, stale)  # of two processes taking it over, one renames it
      except FileNotFoundError:
        return
      with contextlib.suppress(OSError):
        os.remove(stale)
      self.log(f"{self.workdir}: took over the lock of process {pid} on {host}, which is gone")
      return
    since = f" since {holder['started']}" if holder.get("started") else ""
    who = (f"process {pid} on host {host} (ois-jax {holder.get('command', '?')}{since})" if pid
           else f"another process (unreadable lock file {self.path})")
    hint = ("wait for it to finish, or stop it" if host == socket.gethostname() or not pid else
            f"if that run is gone, remove {self.path}")
    raise WorkdirLocked(f"--workdir {self.workdir} is in use by {who}; {hint}, or use another --workdir")

  def release(self) -> None:
    if not self.held:
      return
    self.held = False
    holder = read(self.workdir)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
      with contextlib.suppress(OSError):
        os.remove(self.path)

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def is_lock_file(name: str) -> bool:
  """True for the lock file and its temporary names (not the user's files)."""
  return name == LOCK_FILE or name.startswith(LOCK_FILE + ".")
