"""ois_jax.outputs: destinations checked up front, temporary name then rename, one line on a full
disk with no partial file, the user's umask, and folders replaced only when they hold only what
ois-jax wrote."""

import errno
import json
import os
import pathlib
import stat

import numpy as np
import pytest
from PIL import Image

import cli_errors  # tests/cli_errors.py
from ois_jax import cli, outputs
from ois_jax.errors import CheckpointError, ExportError

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "ois_tiny.py")


def one_line(capsys) -> str:
  return cli_errors.one_line(capsys, prefix="")


@pytest.fixture
def umask_022():
  previous = os.umask(0o022)
  yield
  os.umask(previous)


def mode(path) -> int:
  return stat.S_IMODE(os.stat(path).st_mode)


# --- checks before any work -----------------------------------------------------------------------
def test_check_file_refuses_what_must_not_be_written(tmp_path):
  photo = tmp_path / "photo.png"
  photo.write_bytes(b"the user's photo")
  (tmp_path / "a_folder.png").mkdir()
  (tmp_path / "a_file").write_text("x")
  link = tmp_path / "link.png"
  link.symlink_to(photo)
  cases = [(tmp_path / "a_folder.png", "is a folder"), (tmp_path / "m.xyz", "unknown file type"),
           (photo, "is the input"), (link, "is the input"),
           (tmp_path / "a_file" / "m.png", "is a file, not a folder")]
  for path, needle in cases:
    with pytest.raises(outputs.OutputError, match=needle):
      outputs.check_file(str(path), overwrite=True, extensions=(".png",), inputs=[str(photo)])
  with pytest.raises(outputs.OutputError, match="already exists; pass --overwrite"):
    outputs.check_file(str(photo), extensions=(".png",))
  assert issubclass(outputs.OutputError, ValueError) and issubclass(outputs.WriteError, OSError)
  assert photo.read_bytes() == b"the user's photo"
  assert outputs.check_file(str(tmp_path / "new" / "m.png"), extensions=(".png",))


def test_check_folder(tmp_path):
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(outputs.OutputError, match="is a file"):
    outputs.check_folder(str(tmp_path / "a_file"))
  with pytest.raises(outputs.OutputError, match="is a file, not a folder"):
    outputs.check_folder(str(tmp_path / "a_file" / "below"))
  assert outputs.check_folder(str(tmp_path / "new" / "out")) == str(tmp_path / "new" / "out")


# --- writing --------------------------------------------------------------------------------------
def test_writing_replaces_only_when_complete(tmp_path, umask_022):
  path = tmp_path / "sub" / "out.npy"
  outputs.save_npy(str(path), np.arange(3))
  assert np.array_equal(np.load(path), np.arange(3)) and mode(path) == 0o644
  assert mode(path.parent) == 0o755
  with pytest.raises(RuntimeError), outputs.writing(str(path)) as tmp:
    open(tmp, "wb").write(b"half")
    raise RuntimeError("stopped half-way")
  assert np.array_equal(np.load(path), np.arange(3))
  assert os.listdir(path.parent) == ["out.npy"]  # no temporary file left


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, code):
  path = tmp_path / "mask.png"

  def fail(*args, **kwargs):
    raise OSError(code, os.strerror(code))

  with pytest.raises(outputs.WriteError, match=f"{path}: cannot write .*{os.strerror(code)}"):
    with outputs.writing(str(path)) as tmp:
      open(tmp, "wb").write(b"partial")
      fail()
  assert os.listdir(tmp_path) == []  # neither the file nor a 0-byte one nor the temporary name


def test_wrapped_full_disk_is_recognised():
  try:
    try:
      raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as inner:
      raise ValueError("tensorstore failed") from inner
  except ValueError as e:
    assert outputs.write_failure(e).errno == errno.ENOSPC
  assert outputs.write_failure(RuntimeError("[Errno 28] No space left on device")) is not None
  assert outputs.write_failure(ValueError("shape mismatch")) is None


def test_segment_disk_full_one_line(tmp_path, capsys, monkeypatch):
  """The real `segment` command, with the image writer failing as on a full disk."""
  image = tmp_path / "image.png"
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(image)
  out = tmp_path / "out" / "mask.png"

  def full(self, fp, *args, **kwargs):
    with open(fp, "wb") as f:
      f.write(b"\x89PNG partial")
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(Image.Image, "save", full)
  code = cli.main(["segment", str(image), "--config", TINY, "--config.model.input_size=56",
                   "--click", "5,5,+", "--out", str(out)])
  line = one_line(capsys)
  assert code == 1 and "No space left on device" in line and str(out) in line, line
  assert os.listdir(out.parent) == []  # no 0-byte mask for a rerun to refuse


def test_segment_refuses_its_input_before_work(tmp_path, capsys):
  image = tmp_path / "photo.png"
  Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(image)
  before = image.read_bytes()
  code = cli.main(["segment", str(image), "--config", TINY, "--click", "5,5,+", "--out", str(image),
                   "--overwrite"])
  assert code == 1 and "is the input" in one_line(capsys)
  assert image.read_bytes() == before


def test_depth_out_a_folder_and_unknown_png_before_work(tmp_path, capsys):
  (tmp_path / "d.npy").mkdir()
  image = tmp_path / "i.png"
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
  assert cli.main(["depth", str(image), "--checkpoint", str(tmp_path / "none"),
                   "--out", str(tmp_path / "d.npy")]) == 1
  assert "is a folder" in one_line(capsys)
  assert cli.main(["depth", str(image), "--checkpoint", str(tmp_path / "none"),
                   "--out", str(tmp_path / "e.npy"), "--png", str(tmp_path / "e.jpgx")]) == 1
  assert "unknown file type" in one_line(capsys)


def test_example_refuses_its_input(tmp_path, capsys):
  pytest.importorskip("onnxruntime")
  import importlib.util
  spec = importlib.util.spec_from_file_location("onnx_segment", REPO / "examples" / "onnx_segment.py")
  example = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(example)
  photo = tmp_path / "photo.png"
  Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(photo)
  before = photo.read_bytes()
  assert example.main([str(tmp_path / "no_export"), str(photo), "--click", "1,1,+", "--out", str(photo)]) == 1
  assert "is the input" in capsys.readouterr().err
  assert photo.read_bytes() == before


# --- folders --------------------------------------------------------------------------------------
def test_staged_folder_modes_and_cleanup(tmp_path, umask_022):
  target = tmp_path / "export"
  with outputs.staged_folder(str(target)) as staging:
    os.makedirs(os.path.join(staging, "params"))
    open(os.path.join(staging, "params", "a"), "w").write("1")
  assert mode(target) == 0o755 and mode(target / "params") == 0o755
  assert mode(target / "params" / "a") == 0o644
  with pytest.raises(KeyboardInterrupt), outputs.staged_folder(str(target)) as staging:
    open(os.path.join(staging, "new"), "w").write("2")
    raise KeyboardInterrupt
  assert sorted(os.listdir(tmp_path)) == ["export"] and os.listdir(target) == ["params"]


def test_checkpoint_overwrite_keeps_users_file(tmp_path, umask_022):
  from ois_jax.checkpoint import load_checkpoint, save_checkpoint
  params = {"w": np.ones(3, np.float32)}
  folder = save_checkpoint(str(tmp_path / "best"), params, {"model": "x"})
  assert mode(folder) == 0o755 and mode(os.path.join(folder, "ois_checkpoint.json")) == 0o644
  save_checkpoint(folder, {"w": np.zeros(3, np.float32)}, {"model": "x"}, overwrite=True)
  assert load_checkpoint(folder)[0]["w"].sum() == 0
  (tmp_path / "best" / "notes.txt").write_text("mine")
  with pytest.raises(CheckpointError, match="notes.txt"):
    save_checkpoint(folder, params, {"model": "x"}, overwrite=True)
  assert (tmp_path / "best" / "notes.txt").read_text() == "mine"


def test_export_overwrite_keeps_users_file(tmp_path):
  from ois_jax.export import exporter, manifest as mf
  out = tmp_path / "export"
  out.mkdir()
  (out / "encoder.onnx").write_bytes(b"graph")
  (out / "encoder.onnx.data").write_bytes(b"weights")
  json.dump({"format": mf.FORMAT_NAME, "version": 1, "artifacts": {
      "encoder": {"file": "encoder.onnx", "external_data": "encoder.onnx.data"}}},
      open(out / mf.MANIFEST_FILE, "w"))
  exporter.check_target(str(out), overwrite=True)  # only its own files: may be replaced
  (out / "README.txt").write_text("the user's notes")
  with pytest.raises(ExportError, match="README.txt"):
    exporter.check_target(str(out), overwrite=True)
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(outputs.OutputError, match="is a file"):
    exporter.check_target(str(tmp_path / "a_file" / "export"), overwrite=False)


def test_data_cache_a_file_below_a_file_or_read_only(tmp_path, monkeypatch):
  from data_pipelines import tfds_base
  from ois_jax.errors import DataError
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  with pytest.raises(DataError, match="--cache-dir .*is a file"):
    tfds_base._check_cache(str(a_file), write=False)
  monkeypatch.setenv("OIS_JAX_DATA_CACHE", str(a_file / "tfds"))
  with pytest.raises(DataError, match=r"\$OIS_JAX_DATA_CACHE .*is below the file"):
    tfds_base._check_cache(None, write=False)
  monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a read-only folder answers
  with pytest.raises(DataError, match="cannot write there"):
    tfds_base._check_cache(str(tmp_path / "cache"), write=True)
  assert tfds_base._check_cache(str(tmp_path / "cache"), write=False) == "--cache-dir"
  assert a_file.read_text() == "x"
