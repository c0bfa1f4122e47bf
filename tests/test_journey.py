"""The user's journey through the CLI: train (from DAv2 weights) -> usable weights -> evaluate ->
segment -> Predictor, exactly as the README writes it, and the bad inputs met on the way."""

import csv
import functools
import json
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from ois_jax import Predictor, cli
from ois_jax.checkpoint import load_weights, save_checkpoint
from ois_jax.configs import ois_tiny
from ois_jax.convert import export_weights
from ois_jax.models.depth import DepthConfig, DepthSize
from ois_jax.models import ois

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL = ["--config.data.dataset=procedural", "--config.model.input_size=56",
         "--config.data.batch_size=2", "--config.data.procedural_num_train=8",
         "--config.data.procedural_size=(48,64)", "--config.data.num_threads=1",
         "--config.eval.num_samples=2", "--config.eval.max_clicks=3", "--config.eval.batch_size=2",
         "--config.data.procedural_num_val=2", "--quiet"]


def small_config():
  config = ois_tiny.get_config()
  config.model.input_size = 56
  return config


def random_dav2(config, seed=0):
  """Random DepthAnythingV2 weights shaped like `config`'s encoder and depth head."""
  model = ois.build_model(config.model)
  shapes = jax.eval_shape(functools.partial(ois.init_params, model), jax.random.key(0))
  rng = np.random.default_rng(seed)
  draw = lambda x: (0.1 * rng.standard_normal(x.shape)).astype(np.float32)
  return {"pretrained": jax.tree.map(draw, shapes["encoder"]),
          "depth_head": jax.tree.map(draw, shapes["depth_head"])}


def depth_size_of(config) -> DepthSize:
  """The DepthAnythingV2 sizes of an OIS config with a custom encoder."""
  m = config.model
  return DepthSize(m.encoder_embed_dim, m.encoder_depth, m.encoder_num_heads, tuple(m.encoder_layers),
                   m.head_features, tuple(m.head_out_channels))


def leaves_equal(a, b):
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny model trained 3 steps through `ois-jax train`, started from random DAv2 weights."""
  root = tmp_path_factory.mktemp("journey")
  config = small_config()
  dav2 = random_dav2(config)
  dav2_dir = save_checkpoint(str(root / "dav2"), dav2, {"model": "depth_anything_v2", "variant": "custom"})
  # The user's path: a DAv2 .pth (the original layout, this model's sizes in the JSON beside it),
  # converted on the fly by `ois-jax train`.
  pth = str(root / "dav2_tiny.pth")
  export_weights(dav2, pth, config=DepthConfig("custom", input_size=config.model.input_size,
                                                size=depth_size_of(config)))
  workdir = root / "run"
  code = cli.main(["train", "--config", str(REPO / "configs" / "ois_tiny.py"), f"--workdir={workdir}",
                   "--config.total_steps=3", f"--config.model.depth_checkpoint={pth}", *SMALL])
  assert code == 0
  return {"workdir": workdir, "dav2": dav2, "dav2_dir": dav2_dir, "pth": pth, "root": root}


def test_training_starts_from_the_depth_checkpoint(trained):
  workdir = trained["workdir"]
  step = load_weights(str(workdir / "checkpoints" / "3"))
  params, dav2 = step.params, trained["dav2"]
  # Frozen: the encoder and the depth head are bit-equal to the DAv2 weights after 3 steps.
  assert leaves_equal(params["encoder"], dav2["pretrained"])
  assert leaves_equal(params["depth_head"], dav2["depth_head"])
  # The segmentation head started from the depth head: it moved, but only a little, while a
  # random initialisation is far away.
  drift = max(float(np.abs(np.asarray(a) - b).max()) for a, b in
              zip(jax.tree.leaves(params["seg_head"]), jax.tree.leaves(dav2["depth_head"])))
  random_init = ois.init_params(ois.build_model(small_config().model), jax.random.key(0))["seg_head"]
  gap = max(float(np.abs(np.asarray(a) - b).max()) for a, b in
            zip(jax.tree.leaves(random_init), jax.tree.leaves(dav2["depth_head"])))
  assert 0 < drift < 0.1 * gap
  recorded = json.loads((workdir / "init_weights.json").read_text())
  assert recorded["depth_checkpoint"] == trained["pth"]
  assert json.loads((workdir / "config.json").read_text())["model"]["depth_checkpoint"] == trained["pth"]


def test_resume_says_the_weights_come_from_the_checkpoint(trained, capsys):
  workdir = trained["workdir"]
  code = cli.main(["train", "--config", str(REPO / "configs" / "ois_tiny.py"), f"--workdir={workdir}",
                   "--config.total_steps=3", f"--config.model.depth_checkpoint={trained['dav2_dir']}",
                   *SMALL])
  assert code == 0
  out = capsys.readouterr().out
  assert "Resuming from checkpoint at step 3" in out and "applied at initialisation only" in out


def test_readme_chain_evaluate_segment_predictor(trained, tmp_path, capsys, monkeypatch):
  """evaluate --checkpoint WORKDIR, segment --checkpoint WORKDIR/best, Predictor.from_checkpoint:
  all three predict what the trained params (read from the resumable step 3) predict."""
  monkeypatch.chdir(tmp_path)
  workdir = trained["workdir"]
  assert (workdir / "best" / "ois_checkpoint.json").exists() and (workdir / "final").is_dir()
  step = load_weights(str(workdir / "checkpoints" / "3"))
  import ml_collections
  config = ml_collections.ConfigDict(step.config)

  # 1. ois-jax evaluate --checkpoint WORKDIR
  out = tmp_path / "eval"
  assert cli.main(["evaluate", "--checkpoint", str(workdir), "--dataset", "procedural", "--limit", "2",
                   "--max-clicks", "3", "--out", str(out), "--no-progress"]) == 0
  printed = capsys.readouterr().out
  assert "best validation step" in printed and "NoC90" in printed
  with open(out / "ious.csv") as f:
    cli_ious = np.array([[float(v) for v in row[1:4]] for row in list(csv.reader(f))[1:]])
  from ois_jax.data_pipelines import eval_datasets
  from ois_jax.evaluation import evaluate
  model = ois.build_model(config.model)
  reference = evaluate(model, step.params, config, eval_datasets.load("procedural", config=config,
                                                                      num_scenes=2),
                       max_clicks=3, progress=False)
  np.testing.assert_allclose(cli_ious, reference.ious, atol=1e-6)

  # 2. ois-jax segment --checkpoint WORKDIR/best
  scene = eval_datasets.load("procedural", config=config, num_scenes=1).source[0]
  Image.fromarray(scene["image"]).save(tmp_path / "scene.png")
  ys, xs = np.nonzero(scene["gt"] == 1)
  click = (int(ys[len(ys) // 2]), int(xs[len(xs) // 2]))
  assert cli.main(["segment", str(tmp_path / "scene.png"), "--checkpoint", str(workdir / "best"),
                   "--click", f"{click[0]},{click[1]},+", "--out", str(tmp_path / "mask.png"),
                   "--prob-out", str(tmp_path / "prob.npy")]) == 0
  expected = Predictor.from_config(config, params=step.params)
  expected.set_image(scene["image"])
  want = expected.predict([(click[0], click[1], True)])
  np.testing.assert_allclose(np.load(tmp_path / "prob.npy"), want, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "mask.png")) > 0, want > 0.49)

  # 3. Predictor.from_checkpoint(WORKDIR)
  messages = []
  predictor = Predictor.from_checkpoint(str(workdir), log=messages.append)
  assert messages and "best" in messages[0]
  assert leaves_equal(predictor.params, step.params)
  predictor.set_image(scene["image"])
  np.testing.assert_allclose(predictor.predict([(click[0], click[1], True)]), want, atol=1e-6)


def one_error_line(capsys) -> str:
  err = capsys.readouterr().err.strip()
  assert "Traceback" not in err and len(err.splitlines()) == 1, err
  return err


def test_workdir_of_another_model_config_is_refused(trained, tmp_path, capsys):
  # The workdir's model has input_size 56; the tiny config file says 112.
  code = cli.main(["evaluate", "--config", str(REPO / "configs" / "ois_tiny.py"), "--checkpoint",
                   str(trained["workdir"]), "--dataset", "procedural", "--limit", "1",
                   "--out", str(tmp_path / "e")])
  assert code == 1
  assert "another config" in one_error_line(capsys)
  code = cli.main(["segment", str(tmp_path / "none.png"), "--config", str(REPO / "configs" / "ois_tiny.py"),
                   "--checkpoint", str(trained["workdir"]), "--click", "1,1,+", "--out",
                   str(tmp_path / "m.png")])
  assert code == 1
  err = one_error_line(capsys)
  assert "none.png" in err or "another config" in err
  # With a readable image the model mismatch is what is reported.
  Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "black.png")
  code = cli.main(["segment", str(tmp_path / "black.png"), "--config", str(REPO / "configs" / "ois_tiny.py"),
                   "--checkpoint", str(trained["workdir"]), "--click", "1,1,+", "--out",
                   str(tmp_path / "m.png")])
  assert code == 1 and "input_size: 112 vs 56" in one_error_line(capsys)


def test_unknown_bundled_model_lists_the_known_ones(tmp_path, capsys):
  Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "black.png")
  for argv in (["evaluate", "--model", "ois-huge", "--dataset", "procedural", "--out", str(tmp_path / "e")],
               ["segment", str(tmp_path / "black.png"), "--model", "ois-huge", "--click", "1,1,+",
                "--out", str(tmp_path / "m.png")]):
    assert cli.main(argv) == 1
    err = one_error_line(capsys)
    assert "ois-huge" in err and "ois-tiny-procedural" in err
  with pytest.raises(ValueError, match="ois-tiny-procedural"):
    Predictor.from_pretrained("ois-huge")


def test_depth_and_ois_checkpoints_are_not_confused(trained, tmp_path, capsys):
  # A DAv2 checkpoint where an OIS one is expected.
  code = cli.main(["evaluate", "--checkpoint", trained["dav2_dir"], "--dataset", "procedural",
                   "--out", str(tmp_path / "e")])
  assert code == 1
  err = one_error_line(capsys)
  assert "depth_anything_v2" in err and "not an OIS model" in err
  # An OIS checkpoint where DAv2 weights are expected.
  code = cli.main(["train", "--config", str(REPO / "configs" / "ois_tiny.py"),
                   f"--workdir={tmp_path / 'run'}", "--config.total_steps=1",
                   f"--config.model.depth_checkpoint={trained['workdir'] / 'best'}", *SMALL])
  assert code == 1
  err = one_error_line(capsys)
  assert "holds an OIS checkpoint" in err and "DepthAnythingV2" in err
