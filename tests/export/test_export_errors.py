"""Bad input to `ois-jax export` and to the loaders: one clear line, nothing overwritten."""

import json
import os
import shutil

import pytest

import export_testlib as L
from ois_jax.cli import main
from ois_jax.errors import ExportError
from ois_jax.export import manifest as mf


def _export(args, capsys):
  rc = main(["export", *args])
  return rc, capsys.readouterr().err


def test_a_folder_that_is_no_checkpoint(tmp_path, capsys):
  (tmp_path / "notes.txt").write_text("not a checkpoint")
  rc, err = _export(["--checkpoint", str(tmp_path), "--format", "jax", "--out", str(tmp_path / "x")], capsys)
  assert rc == 1 and "not an ois-jax checkpoint" in err and len(err.strip().splitlines()) == 1
  rc, err = _export(["--checkpoint", str(tmp_path / "missing"), "--format", "onnx", "--out",
                     str(tmp_path / "y")], capsys)
  assert rc == 1 and "no such checkpoint directory" in err
  assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_an_existing_export_is_replaced_only_with_overwrite(tiny_checkpoint, tmp_path, capsys):
  out = tmp_path / "export"
  args = ["--checkpoint", tiny_checkpoint, "--format", "jax", "--out", str(out), "--no-verify"]
  assert main(["export", *args]) == 0
  os.utime(out / "manifest.json", (0, 0))
  rc, err = _export(args, capsys)
  assert rc == 1 and "already holds an export; pass --overwrite" in err
  assert os.stat(out / "manifest.json").st_mtime == 0  # untouched
  assert main(["export", *args, "--overwrite"]) == 0
  manifest = mf.read(str(out))
  for name, entry in manifest["artifacts"].items():
    mf.check_file(str(out), entry, name)  # the new files, consistent with the new manifest
  assert os.stat(out / "manifest.json").st_mtime != 0
  assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no staging left behind


def test_a_non_empty_folder_that_is_no_export_is_never_written(tiny_checkpoint, tmp_path, capsys):
  (tmp_path / "keep.txt").write_text("mine")
  rc, err = _export(["--checkpoint", tiny_checkpoint, "--format", "jax", "--out", str(tmp_path),
                     "--overwrite"], capsys)
  assert rc == 1 and "not empty and holds no export" in err
  assert os.listdir(tmp_path) == ["keep.txt"]


def test_bad_values(tiny_checkpoint, tmp_path, capsys):
  rc, err = _export(["--checkpoint", tiny_checkpoint, "--format", "jax", "--out", str(tmp_path / "o"),
                     "--input-hw", "518x518"], capsys)
  assert rc == 1 and "--input-hw applies to DepthAnythingV2" in err
  rc, err = _export(["--checkpoint", tiny_checkpoint, "--format", "jax", "--out", str(tmp_path / "o"),
                     "--input-hw", "big"], capsys)
  assert rc == 1 and "expected HxW" in err


def _copy(src, dst):
  shutil.copytree(src, dst)
  return str(dst)


def test_onnx_manifest_artifact_mismatch(onnx_export, scene_image, tmp_path, capsys):
  from ois_jax.export import onnx_backend
  example = L.load_example()
  # 1. A replaced file: its sha256 no longer matches.
  swapped = _copy(onnx_export, tmp_path / "swapped")
  shutil.copy(os.path.join(swapped, "encoder.onnx"), os.path.join(swapped, "decoder.onnx"))
  manifest = mf.read(swapped)
  with pytest.raises(ExportError, match="decoder.onnx: does not match the manifest"):
    onnx_backend.Session(swapped, "decoder", manifest["artifacts"]["decoder"])
  assert example.main([swapped, scene_image, "--click", "5,5,+", "--out", str(tmp_path / "m.png")]) == 1
  assert "does not match the manifest (sha256 differs)" in capsys.readouterr().err
  # 2. A manifest edited to the new file's hash: the signatures still differ.
  manifest["artifacts"]["decoder"]["sha256"] = mf.sha256(os.path.join(swapped, "decoder.onnx"))
  mf.write(swapped, manifest)
  with pytest.raises(ExportError, match="does not match the manifest: the manifest lists"):
    onnx_backend.Session(swapped, "decoder", manifest["artifacts"]["decoder"])
  assert example.main([swapped, scene_image, "--click", "5,5,+", "--out", str(tmp_path / "m.png")]) == 1
  assert "are not the manifest's" in capsys.readouterr().err
  # 3. A missing artifact, and a folder without a manifest.
  os.remove(os.path.join(swapped, "encoder.onnx"))
  with pytest.raises(ExportError, match="encoder.onnx: missing"):
    onnx_backend.Session(swapped, "encoder", manifest["artifacts"]["encoder"])
  with pytest.raises(ExportError, match="not an ois-jax export"):
    mf.read(str(tmp_path))


def test_jax_manifest_artifact_mismatch(jax_export, tmp_path):
  from ois_jax.export.jax_runtime import JaxExport
  swapped = _copy(jax_export, tmp_path / "swapped")
  shutil.copy(os.path.join(swapped, "encoder.jax"), os.path.join(swapped, "decoder.jax"))
  with pytest.raises(ExportError, match="decoder.jax: does not match the manifest"):
    JaxExport(swapped)
  manifest = mf.read(swapped)
  manifest["artifacts"]["decoder"]["sha256"] = mf.sha256(os.path.join(swapped, "decoder.jax"))
  mf.write(swapped, manifest)
  with pytest.raises(ExportError, match="decoder.jax does not match the manifest"):
    JaxExport(swapped)
  with open(os.path.join(swapped, "manifest.json")) as f:
    data = json.load(f)
  data["backend"] = "onnx"
  with open(os.path.join(swapped, "manifest.json"), "w") as f:
    json.dump(data, f)
  with pytest.raises(ExportError, match="holds a 'onnx' export, not 'jax'"):
    JaxExport(swapped)
