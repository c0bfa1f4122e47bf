"""jax.export: one artifact for cpu, cuda and tpu, deserialised and run in a fresh process that
imports neither Flax nor the model code, equal to JAX in this process at two batch sizes."""

import json
import os
import subprocess
import sys

import numpy as np

import export_testlib as L
from ois_jax.export import exporter
from ois_jax.export import manifest as mf

CLICK_INPUTS = ("click_coords", "click_valid", "prev_mask", "has_prev")
# Runs in a fresh interpreter: the runtime, then proof of what it did and did not import.
FRESH_PROCESS = """
import json, sys
import numpy as np
from ois_jax.export.jax_runtime import JaxExport
directory, inputs_path, outputs_path = sys.argv[1:]
exported = JaxExport(directory)
inputs = np.load(inputs_path)
outputs = {}
for batch in (1, 2):
  state = exported("encoder", inputs[f"image_{batch}"])
  decoder_inputs = list(state.values()) + [inputs[f"{k}_{batch}"] for k in
                                           ("click_coords", "click_valid", "prev_mask", "has_prev")]
  outputs.update({f"{k}_{batch}": v for k, v in state.items()})
  outputs[f"logits_{batch}"] = exported("decoder", *decoder_inputs)["logits"]
np.savez(outputs_path, **outputs)
import jax
platforms = [jax.export.deserialize(bytearray(open(f"{directory}/{n}.jax", "rb").read())).platforms
             for n in ("encoder", "decoder")]
print(json.dumps({"platforms": platforms, "flax": "flax" in sys.modules,
                  "model_code": sorted(m for m in sys.modules if m.startswith("ois_jax.models"))}))
"""


def test_round_trip_in_a_fresh_process_without_model_code(jax_export, tiny_checkpoint, tmp_path):
  manifest = mf.read(jax_export, backend="jax")
  assert sorted(os.listdir(jax_export)) == ["decoder.jax", "encoder.jax", "manifest.json", "params.npz"]
  source = exporter.load_source(tiny_checkpoint)
  inputs, expected = {}, {}
  for batch in (1, 2):
    sample = exporter.sample_inputs(source, batch, seed=batch)
    inputs[f"image_{batch}"] = sample["encoder"][0]
    # The decoder's inputs after the state: click_coords, click_valid, prev_mask, has_prev.
    inputs.update({f"{n}_{batch}": v for n, v in zip(CLICK_INPUTS, sample["decoder"][-4:])})
    state = exporter.reference(source, "encoder", sample["encoder"])
    state_names = [t["name"] for t in manifest["artifacts"]["encoder"]["outputs"]]
    expected.update({f"{n}_{batch}": v for n, v in zip(state_names, state)})
    expected[f"logits_{batch}"] = exporter.reference(source, "decoder", sample["decoder"])[0]
  np.savez(tmp_path / "inputs.npz", **inputs)
  result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, jax_export, str(tmp_path / "inputs.npz"),
                           str(tmp_path / "outputs.npz")], capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["platforms"] == [["cpu", "cuda", "tpu"]] * 2
  assert report["flax"] is False and report["model_code"] == []
  outputs = np.load(tmp_path / "outputs.npz")
  assert sorted(outputs.files) == sorted(expected)
  for key, value in expected.items():
    assert L.max_rel_diff(outputs[key], value) <= L.TOLERANCE, key


def test_manifest_lists_the_parameters_and_the_check(jax_export):
  manifest = mf.read(jax_export, backend="jax")
  names = manifest["params"]["names"]
  with np.load(os.path.join(jax_export, "params.npz")) as npz:
    assert sorted(npz.files) == sorted(names)
  assert "encoder/blocks_0/attn/qkv/kernel" in names
  assert manifest["created_by"]["platforms"] == ["cpu", "cuda", "tpu"]
  for graph in ("encoder", "decoder"):
    assert sorted(manifest["verification"][graph]) == ["batch_1", "batch_2"]
