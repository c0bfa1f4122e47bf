"""ONNX export: artifacts and manifest, and onnxruntime vs JAX in float32 at two batch sizes."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

import export_testlib as L
from export_testlib import require_export_tools
from ois_jax import transforms
from ois_jax.checkpoint import stored_config
from ois_jax.export import exporter
from ois_jax.export import manifest as mf


def _sessions(directory):
  from ois_jax.export import onnx_backend
  manifest = mf.read(directory, backend="onnx")
  return manifest, {name: onnx_backend.Session(directory, name, entry)
                    for name, entry in manifest["artifacts"].items()}


def test_manifest_describes_the_artifacts(onnx_export, tiny_checkpoint):
  manifest, sessions = _sessions(onnx_export)
  assert sorted(os.listdir(onnx_export)) == ["decoder.onnx", "encoder.onnx", "manifest.json"]
  enc, dec = manifest["artifacts"]["encoder"], manifest["artifacts"]["decoder"]
  assert [t["name"] for t in enc["inputs"]] == ["image"]
  assert enc["inputs"][0] == {"name": "image", "shape": ["batch", 112, 112, 3], "dtype": "float32"}
  assert [t["name"] for t in enc["outputs"]] == ["depth", "features", "level4", "skip1", "skip2", "skip3"]
  assert [t["name"] for t in dec["inputs"]] == [t["name"] for t in enc["outputs"]] + [
      "click_coords", "click_valid", "prev_mask", "has_prev"]
  assert dec["inputs"][-3]["dtype"] == "bool" and dec["inputs"][-4]["shape"] == ["batch", 48, 2]
  assert dec["outputs"] == [{"name": "logits", "shape": ["batch", 112, 112], "dtype": "float32"}]
  # The session's own signature (names, the dynamic batch dim, dtypes) is the manifest's.
  assert [i.shape[0] for i in sessions["decoder"].session.get_inputs()] == ["batch"] * 10
  pre, clicks, post = manifest["preprocessing"], manifest["clicks"], manifest["postprocessing"]
  assert pre["input_size"] == 112 and pre["resize"] == "longest_side"
  np.testing.assert_allclose(pre["mean"], transforms.MEAN)
  np.testing.assert_allclose(pre["std"], transforms.STD)
  assert (clicks["num_positive"], clicks["num_negative"]) == (24, 24)
  assert post["threshold"] == 0.49 and post["output"] == "logits"
  assert manifest["source"]["config"] == stored_config(tiny_checkpoint)
  assert manifest["created_by"]["jax2onnx"] and manifest["created_by"]["onnxruntime"]
  with open(os.path.join(onnx_export, "manifest.json")) as f:
    assert json.load(f) == manifest


def test_export_verified_itself_at_batch_1_and_2(onnx_export):
  verification = mf.read(onnx_export)["verification"]
  for graph in ("encoder", "decoder"):
    assert sorted(verification[graph]) == ["batch_1", "batch_2"]
    for outputs in verification[graph].values():
      for r in outputs.values():
        assert r["max_abs_diff"] <= L.TOLERANCE * r["output_max"], r


def test_tiny_onnx_equals_jax_on_real_images_at_two_batch_sizes(onnx_export, scene_image):
  """Independent of the export's own check: two real images, real clicks, a previous mask."""
  import ois_testlib as T

  from ois_jax.io import load_image
  from ois_jax.models.prompts import Clicks
  model, params = T.full()
  encode, decode = T.fns(model)  # jitted, shared with the model tests
  _, sessions = _sessions(onnx_export)
  image = load_image(scene_image)
  x1, tf = transforms.preprocess(image, 112)
  x2, _ = transforms.preprocess(image[::-1, ::-1].copy(), 112)
  yx = tf.to_model_coords([(y, x) for y, x, _ in L.scene_clicks()])
  clicks = [(float(a), float(b), p) for (a, b), (_, _, p) in zip(yx, L.scene_clicks())]
  for batch in (1, 2):
    images = np.stack([x1, x2][:batch])
    state = encode(params, jnp.asarray(images))
    state_onnx = sessions["encoder"](images)
    for name, got in zip(exporter.G.STATE_KEYS, state_onnx):
      assert L.max_rel_diff(got, state[name]) <= L.TOLERANCE, (batch, name)
    c = Clicks.from_lists([clicks, clicks[:1]][:batch])
    prev = (np.arange(batch * 112 * 112).reshape(batch, 112, 112) % 5 / 4).astype(np.float32)
    has_prev = np.array([True, False][:batch])
    logits = decode(params, state, c, jnp.asarray(prev), jnp.asarray(has_prev))
    got = sessions["decoder"](*state_onnx, np.asarray(c.coords), np.asarray(c.valid), prev, has_prev)[0]
    assert L.max_rel_diff(got, logits) <= L.TOLERANCE, batch


def _library_export(source, tmp_path):
  """Export to ONNX with the export's own check at batch 1 and 2; returns the verification."""
  manifest = exporter.export(source, "onnx", str(tmp_path / "export"))
  return manifest["verification"]


def _assert_within_tolerance(verification, graphs):
  for graph in graphs:
    assert sorted(verification[graph]) == ["batch_1", "batch_2"]
    for batch, outputs in verification[graph].items():
      for name, r in outputs.items():
        assert r["max_abs_diff"] <= L.TOLERANCE * r["output_max"], (graph, batch, name, r)


def test_bundled_model_with_finer_prompt_levels_onnx_equals_jax(tmp_path):
  """The bundled model feeds the prompts to finer skip levels too (model.fine_prompt_levels)."""
  require_export_tools()
  from ois_jax import pretrained
  from ois_jax.predictor import Predictor
  weights = pretrained.load("ois-tiny-procedural")
  assert weights.config["model"]["fine_prompt_levels"] > 0
  predictor = Predictor.from_pretrained("ois-tiny-procedural")
  source = exporter.ois_source(predictor.model, predictor.params, weights.config,
                               {"config": weights.config})
  _assert_within_tolerance(_library_export(source, tmp_path), ("encoder", "decoder"))


@pytest.mark.slow  # ViT-S at 518: ~1.5 min on 2 shared cores
def test_vits_518_onnx_equals_jax_at_two_batch_sizes(tmp_path):
  require_export_tools()
  from ois_jax.configs import ois_vits_518
  from ois_jax.models import ois
  from ois_jax.predictor import Predictor
  config = ois_vits_518.get_config()
  params = L.random_params(ois.build_model(config.model))  # NumPy: no flax init compile
  predictor = Predictor.from_config(config, params=params)
  source = exporter.ois_source(predictor.model, predictor.params, {"model": config.model.to_dict()},
                               {"config": {"model": config.model.to_dict()}})
  _assert_within_tolerance(_library_export(source, tmp_path), ("encoder", "decoder"))


@pytest.mark.slow  # DAv2 ViT-S at 518: ~1 min on 2 shared cores
def test_dav2_vits_depth_onnx_equals_jax_at_two_batch_sizes(tmp_path):
  require_export_tools()
  from ois_jax.checkpoint import save_checkpoint
  from ois_jax.models.depth import DepthAnythingV2, DepthConfig
  params = DepthAnythingV2("vits").random_params(0)
  ckpt = save_checkpoint(str(tmp_path / "dav2"), params, DepthConfig("vits"))
  source = exporter.load_source(ckpt)
  assert source.kind == "depth_anything_v2" and [g.name for g in source.graphs] == ["depth"]
  verification = _library_export(source, tmp_path)
  _assert_within_tolerance(verification, ("depth",))
  manifest = mf.read(str(tmp_path / "export"))
  assert manifest["artifacts"]["depth"]["inputs"][0]["shape"] == ["batch", 518, 518, 3]
  assert manifest["preprocessing"]["input_hw"] == [518, 518]
