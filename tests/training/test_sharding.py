"""1 device vs 8 simulated CPU devices (data x FSDP): same losses and params; FSDP really shards.

Runs in a subprocess because XLA_FLAGS must be set before JAX is imported.
"""

import json
import os
import pathlib
import subprocess
import sys

SCRIPT = r"""
import importlib.util, json, sys
import jax, numpy as np
spec = importlib.util.spec_from_file_location("standin", sys.argv[1])
sm = importlib.util.module_from_spec(spec); spec.loader.exec_module(sm)
from ois_jax.configs import ois_tiny
from ois_jax.training import sharding, train_step as ts
assert jax.device_count() == 8, jax.devices()

def run(mesh_shape, devices):
  cfg = ois_tiny.get_config()
  cfg.model.input_size, cfg.data.batch_size = 32, 8
  cfg.train.mesh_shape, cfg.train.fsdp_min_size = mesh_shape, 64
  mesh = sharding.make_mesh(cfg, devices)
  model = sm.FNS.build_model(cfg.model)
  state, shardings, tx, mask = ts.create_train_state(model, cfg, sm.FNS, mesh, jax.random.key(0))
  specs = {jax.tree_util.keystr(p): str(x.sharding.spec) for p, x in
           jax.tree_util.tree_flatten_with_path(state["params"])[0]}
  shard_shapes = {jax.tree_util.keystr(p): list(x.addressable_shards[0].data.shape) for p, x in
                  jax.tree_util.tree_flatten_with_path(state["params"])[0]}
  mu_specs = [str(x.sharding.spec) for p, x in jax.tree_util.tree_flatten_with_path(state["opt_state"])[0]
              if ".mu" in jax.tree_util.keystr(p)]
  step = ts.jit_train_step(ts.make_train_step(model, cfg, sm.FNS, tx, mask), shardings, mesh)
  data = sm.ToyData(cfg, seed=1)
  losses = []
  for _ in range(3):
    batch = sharding.shard_batch(next(data), cfg, mesh)
    state, metrics = step(state, batch, jax.random.key(2))
    losses.append(float(metrics["loss"]))
  batch_spec = str(batch["image"].sharding.spec)
  assert sharding.batch_shards(cfg, mesh) == len(devices)
  params = {jax.tree_util.keystr(p): np.asarray(x).tolist() for p, x in
            jax.tree_util.tree_flatten_with_path(state["params"])[0]}
  return dict(losses=losses, params=params, specs=specs, shard_shapes=shard_shapes,
              mu_specs=mu_specs, batch_spec=batch_spec)

one = run((1, 1), jax.devices()[:1])
eight = run((2, 4), jax.devices())
print("RESULT" + json.dumps({"one": one, "eight": eight}))
"""


def test_one_vs_eight_devices_and_fsdp(tmp_path):
  import numpy as np
  root = pathlib.Path(__file__).resolve().parents[2]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  standin = pathlib.Path(__file__).with_name("standin_model.py")
  proc = subprocess.run([sys.executable, "-c", SCRIPT, str(standin)], cwd=root, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1]
  out = json.loads(line[len("RESULT"):])
  one, eight = out["one"], out["eight"]
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
  for key, value in one["params"].items():
    np.testing.assert_allclose(np.asarray(eight["params"][key]), np.asarray(value), rtol=2e-5,
                               atol=2e-6, err_msg=key)
  # FSDP: the large kernels are split over the 4-way 'fsdp' axis, small leaves are replicated.
  sharded = {k: s for k, s in eight["specs"].items() if "fsdp" in s}
  kernel = "['seg_head']['layers_2']['kernel']"
  assert kernel in sharded, eight["specs"]
  assert eight["shard_shapes"][kernel] == [3, 3, 16, 4]          # (3, 3, 16, 16) split 4 ways
  assert "fsdp" in eight["specs"]["['encoder']['kernel']"]
  assert "fsdp" not in eight["specs"]["['seg_head']['layers_2']['bias']"]
  assert any("fsdp" in s for s in eight["mu_specs"])              # Adam moments follow params
  assert not any("fsdp" in s or "data" in s for s in one["specs"].values())
  assert "data" in eight["batch_spec"] and "fsdp" in eight["batch_spec"]
