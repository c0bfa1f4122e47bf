"""One way to write a file or a folder, used by every command that writes.

  path = outputs.check_file(args.out, overwrite, (".png",), inputs=[args.image])  # before any work
  ...
  with outputs.writing(path) as tmp:       # a temporary name beside `path`
    Image.fromarray(mask).save(tmp, format="PNG")
  # renamed onto `path` only when complete, with the user's umask

- The destination is checked up front (`check_file`, `check_folder`): not a folder where a file is
  meant (nor a file where a folder is), a known extension, never one of the inputs (same file by
  os.path.samefile, also through a link), not an existing output unless `overwrite`, and a parent
  that exists or can be made (not below a regular file, writable).
- A file is written to a temporary name beside it and renamed into place (`writing`); a folder is
  written into a temporary sibling and swapped in (`staged_folder`). An interrupted or failed
  write leaves the destination as it was and removes the partial file: no 0-byte file that a
  rerun would refuse.
- A full disk, a read-only file system or a missing permission (ENOSPC, EDQUOT, EFBIG, EROFS,
  EACCES, EPERM), also when a library wrapped it in its own exception, becomes one WriteError
  line naming the path.
- Files get 0666 & ~umask and folders 0777 & ~umask, as `open` and `mkdir` give them
  (tempfile's are private, 0600 / 0700).
- A folder replaced with `overwrite` may hold only what this tool wrote (`check_replaceable`,
  from the folder's own record of its files); anything else in it is never deleted.

Imports nothing heavy (no JAX, no NumPy).
"""

import contextlib
import errno
import os
import shutil
import tempfile

from ois_jax import stopping
from ois_jax.errors import OISError

WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)
_TEXTS = ("No space left on device", "Disk quota exceeded", "Read-only file system",
          "Permission denied")


class OutputError(OISError, ValueError):
  """An output path is unusable: a folder where a file is meant, an unknown extension, one of
  the inputs, an existing output without --overwrite, a parent that cannot be made."""


class WriteError(OISError, OSError):
  """Writing an output failed (full disk, read-only file system, no permission); the partial
  file was removed and what was there before is unchanged."""


# --- modes ----------------------------------------------------------------------------------------
def umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def file_mode() -> int:
  return 0o666 & ~umask()


def folder_mode() -> int:
  return 0o777 & ~umask()


def set_modes(path: str) -> None:
  """The modes `open` / `mkdir` would give under the umask, on `path` and everything below it."""
  fmode, dmode = file_mode(), folder_mode()
  if os.path.isfile(path):
    os.chmod(path, fmode)
    return
  os.chmod(path, dmode)
  for root, dirs, files in os.walk(path):
    for d in dirs:
      if not os.path.islink(os.path.join(root, d)):
        os.chmod(os.path.join(root, d), dmode)
    for f in files:
      if not os.path.islink(os.path.join(root, f)):
        os.chmod(os.path.join(root, f), fmode)


# --- checks before any work -----------------------------------------------------------------------
def _nearest_existing(path: str) -> str:
  ancestor = os.path.dirname(os.path.abspath(path))
  while not os.path.lexists(ancestor):
    ancestor = os.path.dirname(ancestor)
  return ancestor


def _check_parent(path: str, what: str) -> None:
  ancestor = _nearest_existing(path)
  if not os.path.isdir(ancestor):
    raise OutputError(f"{what} {path}: {ancestor} is a file, not a folder; give a path in a folder")
  if not os.access(ancestor, os.W_OK | os.X_OK):
    raise OutputError(f"{what} {path}: cannot create anything in {ancestor} (not writable)")


def same_file(a: str, b: str) -> bool:
  """True when `a` and `b` name one file (also through links or different spellings)."""
  try:
    return os.path.samefile(a, b)
  except OSError:
    return os.path.realpath(a) == os.path.realpath(b)


def check_file(path: str, overwrite: bool = False, extensions: tuple[str, ...] = (),
               what: str = "--out", inputs=()) -> str:
  """Refuses, before any work, an output file that cannot or must not be written (OutputError).

  extensions: the known endings (lower case, with the dot); `inputs`: the paths the command
  reads (an output that is one of them is refused, with or without `overwrite`).
  Returns `path`.
  """
  path = os.fspath(path)
  if not path or path.endswith(os.sep):
    raise OutputError(f"{what} {path!r}: give a file name")
  if os.path.isdir(path):
    raise OutputError(f"{what} {path}: is a folder; give a file name")
  if extensions and not path.lower().endswith(tuple(extensions)):
    raise OutputError(f"{what} {path}: unknown file type; use one of {', '.join(extensions)}")
  for source in inputs:
    if source and os.path.exists(path) and os.path.exists(source) and same_file(path, source):
      raise OutputError(f"{what} {path}: is the input {source}; give another file name")
  if os.path.lexists(path) and not overwrite:
    raise OutputError(f"{what} {path}: already exists; pass --overwrite to replace it")
  _check_parent(path, what)
  return path


def check_folder(path: str, what: str = "--out") -> str:
  """OutputError unless `path` is a folder or can be made one (the folder's contents are the
  caller's to judge). Returns the absolute path."""
  path = os.path.abspath(os.fspath(path))
  if os.path.lexists(path) and not os.path.isdir(path):
    raise OutputError(f"{what} {path}: is a file; give a folder")
  if os.path.isdir(path):
    if not os.access(path, os.W_OK | os.X_OK):
      raise OutputError(f"{what} {path}: cannot write there (not writable)")
  else:
    _check_parent(path, what)
  return path


def check_replaceable(directory: str, listed, what: str, error: type = OutputError) -> None:
  """`error` unless every entry of `directory` is one of `listed` (the names this tool wrote
  there, from its record): replacing the folder must not delete anything else."""
  listed = {os.path.normpath(name).split(os.sep)[0] for name in listed}
  others = sorted(name for name in os.listdir(directory) if name not in listed)
  if others:
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    raise error(f"{directory}: holds files that are not part of the {what} ({shown}); --overwrite "
                "replaces only what ois-jax wrote. Move them, or choose another folder")


# --- writing --------------------------------------------------------------------------------------
def write_failure(error: BaseException) -> OSError | None:
  """The OSError (full disk, read-only, no permission) behind `error`, also when a library
  wrapped it, or None."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
      return error
    text = str(error)
    for t in _TEXTS:
      if t in text:
        code = {0: errno.ENOSPC, 1: errno.EDQUOT, 2: errno.EROFS, 3: errno.EACCES}[_TEXTS.index(t)]
        return OSError(code, t)
    error = error.__cause__ or error.__context__
  return None


def _reason(failure: OSError) -> str:
  return failure.strerror or os.strerror(failure.errno or errno.EIO)


def make_folder(path: str, what: str = "--out") -> None:
  """os.makedirs with the umask's modes; a failure to write is one WriteError line."""
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    if e.errno in WRITE_ERRNOS or e.errno in (errno.ENOTDIR, errno.EEXIST):
      raise WriteError(f"{what} {path}: cannot create the folder ({e.strerror})") from None
    raise


@contextlib.contextmanager
def writing(path: str, what: str = "--out"):
  """Yields a temporary file name beside `path`; renames it onto `path` once the block ends
  without an exception (modes from the umask). The temporary file is removed on any exit."""
  path = os.path.abspath(os.fspath(path))
  parent = os.path.dirname(path)
  make_folder(parent, what)
  try:
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
  except OSError as e:
    raise WriteError(f"{what} {path}: cannot write ({e.strerror}); nothing was written") from None
  os.close(fd)
  try:
    with _failure_in_one_line(what, path, "file"):
      yield tmp
      _raise_swallowed_stop()
      os.chmod(tmp, file_mode())
      os.replace(tmp, path)
      stopping.keep(path)
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)


def _raise_swallowed_stop() -> None:
  """Before a commit: a stop whose exception a library callback swallowed ends the write."""
  if stopping.received():
    raise stopping.Stopped(stopping.received())


@contextlib.contextmanager
def _failure_in_one_line(what: str, path: str, kind: str):
  """Around a write and its commit: a failure of the disk (write_failure) becomes one WriteError."""
  try:
    yield
  except Exception as e:
    failure = write_failure(e)
    if failure is None:
      raise
    raise WriteError(f"{what} {path}: cannot write ({_reason(failure)}); nothing was written "
                     f"(the partial {kind} was removed)") from None


def write_bytes(path: str, data: bytes, what: str = "--out") -> str:
  with writing(path, what) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)
  return path


def write_text(path: str, text: str, what: str = "--out") -> str:
  return write_bytes(path, text.encode("utf-8"), what)


@contextlib.contextmanager
def staged_folder(directory: str, what: str = "--out"):
  """Yields a temporary sibling folder of `directory`; once the block ends without an exception it
  gets the umask's modes and replaces `directory` (the old one is removed only once the new one is
  in place, see records.publish_folder). The staging folder is removed on any exit."""
  from ois_jax import records
  directory = os.path.abspath(os.fspath(directory))
  parent = os.path.dirname(directory)
  make_folder(parent, what)
  try:
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.tmp-", dir=parent)
  except OSError as e:
    raise WriteError(f"{what} {directory}: cannot write ({e.strerror}); nothing was written") from None
  try:
    with _failure_in_one_line(what, directory, "folder"):
      yield staging
      _raise_swallowed_stop()
      set_modes(staging)
      records.publish_folder(staging, directory)
      stopping.keep(directory)
  finally:
    old = staging + ".old"  # the folder that was there, if stopped between the two renames
    if os.path.lexists(old) and not os.path.lexists(directory):
      os.rename(old, directory)
    for leftover in (staging, old):
      if os.path.lexists(leftover):
        shutil.rmtree(leftover, ignore_errors=True)


def save_image(path: str, pixels, what: str = "--out") -> str:
  """An (H, W) or (H, W, 3) uint8 array as an image file, its format told by the extension."""
  from PIL import Image
  fmt = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
  with writing(path, what) as tmp:
    Image.fromarray(pixels).save(tmp, format=fmt)
  return path


def save_npy(path: str, array, what: str = "--out") -> str:
  import numpy as np
  with writing(path, what) as tmp:
    with open(tmp, "wb") as f:
      np.save(f, array)
  return path
