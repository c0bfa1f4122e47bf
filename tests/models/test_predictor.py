"""Predictor: original-resolution predictions, no recompiles per click, clear errors, checkpoints, CLI."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ois_jax.configs import ois_tiny
from ois_jax import Predictor, transforms
from ois_jax.errors import ClickError, ImageError
from ois_jax.models.prompts import Clicks


import ois_testlib as T  # shared tiny model, one per process (tests/conftest.py)
IMAGE = np.random.default_rng(0).integers(0, 256, (70, 130, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def predictor():
  _, params = T.full()
  p = Predictor.from_config(ois_tiny.get_config(), params=params)
  p.set_image(IMAGE)
  return p


def test_from_config_initialises_from_the_seed(predictor):
  fresh = Predictor.from_config(ois_tiny.get_config(), seed=0)  # the init compilation is cached
  for a, b in zip(jax.tree.leaves(fresh.params), jax.tree.leaves(predictor.params)):
    np.testing.assert_array_equal(a, b)
  other = Predictor.from_config(ois_tiny.get_config().model, seed=1)
  assert any(np.any(np.asarray(a) != np.asarray(b))
             for a, b in zip(jax.tree.leaves(other.params), jax.tree.leaves(predictor.params)))


def test_predict_returns_probabilities_at_original_resolution(predictor):
  prob = predictor.predict([(10, 20, True)])
  assert prob.shape == (70, 130) and prob.dtype == np.float32
  assert (prob >= 0).all() and (prob <= 1).all()


def test_predict_matches_the_manual_pipeline(predictor):
  model, params = T.full()
  clicks = [(10, 20, True), (50, 100, False)]
  prev = (np.arange(70 * 130).reshape(70, 130) % 7 == 0)
  x, tf = transforms.preprocess(IMAGE, 112)
  encode, decode = T.fns(model)  # batch 2 (the image twice): reuses test_ois's compilations
  state = encode(params, jnp.asarray(np.stack([x, x])))
  yx = tf.to_model_coords([(y, x_) for y, x_, _ in clicks])
  c = Clicks.from_lists([[(float(a), float(b), p) for (a, b), (_, _, p) in zip(yx, clicks)]] * 2)
  prev_model = transforms.map_to_model(prev.astype(np.float32), tf)
  logits = decode(params, state, c, jnp.asarray(np.stack([prev_model] * 2)), jnp.array([True, True]))[0]
  expected = jax.nn.sigmoid(transforms.postprocess(np.asarray(logits), tf))
  np.testing.assert_allclose(predictor.predict(clicks, prev_mask=prev), expected, atol=1e-4)


def test_adding_clicks_never_recompiles(predictor):
  predictor.predict([(5, 5, True)])
  size = predictor._predict._cache_size()
  clicks, prev = [], None
  for i in range(6):
    clicks.append((3 + 9 * i, 7 + 17 * i, i % 2 == 0))
    prev = predictor.predict(clicks, prev_mask=prev) > 0.5 if i else predictor.predict(clicks)
  assert predictor._predict._cache_size() == size


def test_clear_errors(predictor):
  with pytest.raises(ClickError, match="outside"):
    predictor.predict([(70, 5, True)])
  with pytest.raises(ClickError, match="outside"):
    predictor.predict([(5, -1, False)])
  with pytest.raises(ClickError, match="25 positive"):
    predictor.predict([(1, i, True) for i in range(25)])
  with pytest.raises(ClickError, match="25 negative"):
    predictor.predict([(1, 0, True)] + [(2, i, False) for i in range(25)])
  with pytest.raises(ClickError, match="no clicks"):
    predictor.predict([])
  with pytest.raises(ClickError, match="prev_mask has shape"):
    predictor.predict([(1, 1, True)], prev_mask=np.zeros((130, 70)))
  with pytest.raises(ClickError, match=r"expected \(y, x, is_positive\)"):
    predictor.predict([(1, 1)])
  fresh = Predictor(predictor.model, predictor.params)
  with pytest.raises(ClickError, match="before set_image"):
    fresh.predict([(1, 1, True)])
  with pytest.raises(ImageError, match="uint8"):
    fresh.set_image(IMAGE.astype(np.float32))
  with pytest.raises(ImageError, match=r"\(H, W, 3\)"):
    fresh.set_image(IMAGE[..., 0])


def test_checkpoint_round_trip_and_cli(predictor, tmp_path):
  from ois_jax.checkpoint import save_checkpoint
  from ois_jax.cli import main as cli_main
  ckpt = save_checkpoint(str(tmp_path / "ckpt"), predictor.params, ois_tiny.get_config())
  loaded = Predictor.from_checkpoint(ckpt)
  loaded.set_image(IMAGE)
  clicks = [(30, 40, True), (60, 120, False)]
  np.testing.assert_allclose(loaded.predict(clicks), predictor.predict(clicks), atol=1e-6)

  image_path, out = tmp_path / "img.png", tmp_path / "mask.png"
  Image.fromarray(IMAGE).save(image_path)
  rc = cli_main(["segment", str(image_path), "--checkpoint", ckpt, "--click", "30,40,+",
                 "--click", "60,120,-", "--out", str(out), "--threshold", "0.5"])
  assert rc == 0
  mask = np.asarray(Image.open(out))
  assert mask.shape == (70, 130)
  np.testing.assert_array_equal(mask > 0, predictor.predict(clicks) > 0.5)
  assert cli_main(["segment", str(image_path), "--checkpoint", ckpt, "--click", "300,40,+",
                   "--out", str(out)]) == 1  # a click outside the image: one clear line, exit 1
