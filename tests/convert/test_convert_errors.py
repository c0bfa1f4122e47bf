"""Clear errors of the converter, the checkpoint format and the convert CLI."""

import os
import sys

import numpy as np
import pytest

from ois_jax import checkpoint
from ois_jax.cli import main as cli_main
from ois_jax.convert import (expected_hf_shapes, expected_original_shapes, from_state_dict, read_state_dict,
                             to_original, write_state_dict)
from ois_jax.errors import CheckpointError


def _zeros(shapes):
  return {k: np.zeros(s, np.float32) for k, s in shapes.items()}


def _views(shapes):
  """Zero-byte stand-ins: enough for detection and key checks of big variants."""
  return {k: np.broadcast_to(np.float32(0), s) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def vits_safetensors(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("st") / "vits.safetensors")
  write_state_dict(path, _zeros(expected_original_shapes("vits")))
  return path


@pytest.mark.parametrize("fmt", ["original", "hf"])
def test_other_variant_than_asked(fmt):
  shapes = expected_original_shapes("vitb") if fmt == "original" else expected_hf_shapes("vitb")
  with pytest.raises(CheckpointError, match=r"holds a DepthAnythingV2 vitb checkpoint .*768.*vits was asked"):
    from_state_dict(_views(shapes), variant="vits", source="w.pth")


def test_vitl_detected_from_shapes():
  with pytest.raises(CheckpointError, match="vitl checkpoint"):
    from_state_dict(_views(expected_hf_shapes("vitl")), variant="vitb")


def test_cli_refuses_other_variant(vits_safetensors, tmp_path, capsys):
  out = str(tmp_path / "ckpt")
  assert cli_main(["convert", vits_safetensors, out, "--variant", "vitb"]) == 1
  err = capsys.readouterr().err
  assert vits_safetensors in err and "vits checkpoint" in err and "vitb was asked" in err
  assert not os.path.exists(out)


def test_missing_unexpected_and_misshapen_keys_in_one_message():
  sd = _zeros(expected_original_shapes("vits"))
  del sd["pretrained.blocks.3.attn.qkv.weight"]
  del sd["depth_head.scratch.refinenet4.resConfUnit1.conv2.bias"]
  sd["depth_head.extra.weight"] = np.zeros(3, np.float32)
  sd["pretrained.blocks.7.mlp.fc1.weight"] = np.zeros((1536, 383), np.float32)
  with pytest.raises(CheckpointError) as e:
    from_state_dict(sd, source="x.pth")
  msg = str(e.value)
  assert "x.pth" in msg and "2 missing, 1 unexpected, 1 wrong shape" in msg
  for expected in ["missing key: pretrained.blocks.3.attn.qkv.weight (1152, 384)",
                   "missing key: depth_head.scratch.refinenet4.resConfUnit1.conv2.bias (64,)",
                   "unexpected key: depth_head.extra.weight (3,)",
                   "wrong shape: pretrained.blocks.7.mlp.fc1.weight is (1536, 383), expected (1536, 384)"]:
    assert expected in msg


def test_hf_missing_query_reported_in_hf_names():
  sd = _views(expected_hf_shapes("vits"))
  del sd["backbone.encoder.layer.0.attention.attention.value.bias"]
  with pytest.raises(CheckpointError, match=r"missing key: backbone\.encoder\.layer\.0\.attention\.attention\.value\.bias"):
    from_state_dict(sd)


def test_unknown_layout():
  with pytest.raises(CheckpointError, match="cannot tell the checkpoint layout"):
    from_state_dict({"encoder.weight": np.zeros(3)}, source="foo.pth")


def test_flax_params_with_wrong_tree():
  params, _, _ = from_state_dict(_zeros(expected_original_shapes("vits")))
  del params["depth_head"]["scratch"]["output_conv1"]
  with pytest.raises(CheckpointError, match=r"missing key: depth_head/scratch/output_conv1/kernel"):
    to_original(params)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_and_corrupt_files(tmp_path, suffix):
  pytest.importorskip("torch")
  good = str(tmp_path / f"good{suffix}")
  write_state_dict(good, {"a": np.arange(4096, dtype=np.float32)})
  data = open(good, "rb").read()
  truncated = str(tmp_path / f"truncated{suffix}")
  open(truncated, "wb").write(data[: len(data) // 2])
  garbage = str(tmp_path / f"garbage{suffix}")
  open(garbage, "wb").write(os.urandom(2000))
  assert np.array_equal(read_state_dict(good)["a"], np.arange(4096, dtype=np.float32))
  for path in (truncated, garbage):
    with pytest.raises(CheckpointError, match=path.replace(".", r"\.")):
      read_state_dict(path)


def test_pth_that_is_not_a_state_dict(tmp_path):
  torch = pytest.importorskip("torch")
  path = str(tmp_path / "list.pth")
  torch.save([torch.zeros(2)], path)
  with pytest.raises(CheckpointError, match="not a state dict"):
    read_state_dict(path)


def test_safetensors_needs_no_torch_and_pth_says_what_is_missing(vits_safetensors, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
  assert len(read_state_dict(vits_safetensors)) == len(expected_original_shapes("vits"))
  pth = tmp_path / "w.pth"
  pth.write_bytes(b"x")
  with pytest.raises(CheckpointError, match=r"needs PyTorch.*ois-jax\[torch\]"):
    read_state_dict(str(pth))


def test_existing_checkpoint_refused_without_overwrite(vits_safetensors, tmp_path, capsys):
  out = str(tmp_path / "ckpt")
  assert cli_main(["convert", vits_safetensors, out]) == 0
  stamp = os.path.getmtime(os.path.join(out, checkpoint.METADATA_FILE))
  assert cli_main(["convert", vits_safetensors, out]) == 1
  assert "already holds a checkpoint; pass --overwrite" in capsys.readouterr().err
  assert os.path.getmtime(os.path.join(out, checkpoint.METADATA_FILE)) == stamp
  assert cli_main(["convert", vits_safetensors, out, "--overwrite", "--pos-embed-mode", "hf"]) == 0
  assert checkpoint.stored_config(out)["pos_embed_mode"] == "hf"
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no staging leftovers


def test_existing_export_file_refused_without_overwrite(vits_safetensors, tmp_path, capsys):
  ckpt = str(tmp_path / "ckpt")
  assert cli_main(["convert", vits_safetensors, ckpt]) == 0
  out = tmp_path / "w.pth"
  out.write_bytes(b"keep me")
  assert cli_main(["convert", ckpt, str(out)]) == 1
  assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"
  assert cli_main(["convert", ckpt, str(tmp_path / "w.npz")]) == 1  # not a weight file type
  assert cli_main(["convert", ckpt, str(tmp_path / "x.pth"), "--variant", "vitb"]) == 1


def test_non_checkpoint_directory_is_never_replaced(tmp_path):
  target = tmp_path / "notes"
  target.mkdir()
  (target / "todo.txt").write_text("mine")
  for overwrite in (False, True):
    with pytest.raises(CheckpointError, match="not empty and is not an ois-jax checkpoint"):
      checkpoint.save_checkpoint(str(target), {"w": np.zeros(2)}, {"model": "x"}, overwrite=overwrite)
  assert (target / "todo.txt").read_text() == "mine"


def test_corrupt_and_incomplete_checkpoints(tmp_path):
  params = {"a": {"w": np.arange(1000, dtype=np.float32)}, "b": np.ones(3, np.float32)}
  good = str(tmp_path / "good")
  checkpoint.save_checkpoint(good, params, {"model": "x", "sizes": (1, 2)})
  loaded, config = checkpoint.load_checkpoint(good)
  assert np.array_equal(loaded["a"]["w"], params["a"]["w"]) and config == {"model": "x", "sizes": [1, 2]}

  # Damage every data file of the params tree.
  for root, _, files in os.walk(os.path.join(good, checkpoint.PARAMS_DIR)):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "r+b") as f:
        f.truncate(max(os.path.getsize(path) // 3, 1))
  with pytest.raises(CheckpointError, match="corrupt or truncated"):
    checkpoint.load_checkpoint(good)

  with open(os.path.join(good, checkpoint.METADATA_FILE), "w") as f:
    f.write("{not json")
  with pytest.raises(CheckpointError, match=checkpoint.METADATA_FILE):
    checkpoint.load_checkpoint(good)
  with pytest.raises(CheckpointError, match="no such checkpoint directory"):
    checkpoint.load_checkpoint(str(tmp_path / "absent"))
