"""The demo's model side (no web framework): same probabilities as Predictor, one encode per
image, the protocol's feedback, undo, slot limits, the views' numbers."""

import flax.linen as nn
import jax
import numpy as np
import pytest

import ois_testlib as T  # shared tiny model, one per process (tests/conftest.py)
from ois_jax import Predictor
from ois_jax.configs import ois_tiny
from ois_jax.demo import engine as engine_lib, render
from ois_jax.errors import ClickError, ConfigError
from ois_jax.models import ois
from ois_jax.models.attention import CrossAttention

IMAGE = np.random.default_rng(0).integers(0, 256, (70, 130, 3), dtype=np.uint8)
CLICKS = [(30, 60, True), (10, 100, False), (50, 20, True)]


@pytest.fixture(scope="module")
def engine():
  _, params = T.full()
  return engine_lib.Engine.from_weights(ois_tiny.get_config(), params, "tiny test model")


def test_probabilities_match_the_predictor_click_by_click(engine):
  session = engine.new_session()
  session.set_image(IMAGE)
  predictor = Predictor.from_config(ois_tiny.get_config(), params=engine.params)
  predictor.set_image(IMAGE)
  prev = None
  for i, click in enumerate(CLICKS):
    result = session.click(*click)
    expected = predictor.predict(CLICKS[:i + 1], prev_mask=prev)  # the protocol: probs fed back
    np.testing.assert_allclose(result.probs, expected, atol=1e-6)
    prev = expected
  np.testing.assert_array_equal(session.mask(), prev > ois_tiny.get_config().eval.threshold)


def test_encodes_once_per_image_never_per_click(engine):
  session = engine.new_session()
  before = engine.encodes
  session.set_image(IMAGE)
  for click in CLICKS:
    session.click(*click)
  session.undo()
  session.click(*CLICKS[-1])
  session.reset()
  session.click(*CLICKS[0])
  assert engine.encodes - before == 1
  session.set_image(IMAGE[:50])
  assert engine.encodes - before == 2


def test_undo_restores_the_previous_mask_and_its_feedback(engine):
  session = engine.new_session()
  session.set_image(IMAGE)
  first = session.click(*CLICKS[0]).probs
  second = session.click(*CLICKS[1]).probs
  assert session.undo() and len(session.clicks) == 1
  np.testing.assert_array_equal(session.last.probs, first)
  again = session.click(*CLICKS[1]).probs  # same clicks, same fed-back mask -> same result
  np.testing.assert_array_equal(again, second)
  session.reset()
  assert session.last is None and session.mask() is None and not session.undo()


def test_refuses_a_25th_positive_click_and_keeps_its_state(engine):
  session = engine.new_session()
  session.set_image(IMAGE)
  for i in range(24):
    session.click(5 + i, 5 + 2 * i, True)
  probs = session.last.probs
  with pytest.raises(ClickError, match="25 positive clicks; the model has 24 positive slots"):
    session.click(40, 40, True)
  assert len(session.clicks) == 24 and session.last.probs is probs
  session.click(40, 40, False)  # a negative slot is still free
  assert len(session.clicks) == 25


def test_clicks_before_an_image_or_outside_it_are_refused(engine):
  session = engine.new_session()
  with pytest.raises(ClickError, match="no image yet"):
    session.click(1, 1, True)
  session.set_image(IMAGE)
  with pytest.raises(ClickError, match="outside the 70x130 image"):
    session.click(70, 5, True)
  assert session.clicks == []


def test_large_images_are_downscaled_with_a_notice(engine):
  session = engine.new_session()
  notice = session.set_image(IMAGE, "wide.png", max_side=65)
  assert "wide.png is 130x70" in notice and "downscaled to 65x35" in notice
  assert session.image.shape == (35, 65, 3)
  assert session.click(10, 10, True).probs.shape == (35, 65)
  assert session.set_image(IMAGE, "small.png") == ""


def test_sessions_do_not_share_images_or_clicks(engine):
  a, b = engine.new_session(), engine.new_session()
  a.set_image(IMAGE)
  a.click(*CLICKS[0])
  b.set_image(IMAGE[::-1].copy())
  b.click(*CLICKS[1])
  b.click(*CLICKS[2])
  assert len(a.clicks) == 1 and a.image.shape == IMAGE.shape
  np.testing.assert_array_equal(a.image, IMAGE)
  assert not np.allclose(a.last.probs, b.last.probs)


def test_order_reference_depths_are_those_of_the_clicked_pixels(engine):
  session = engine.new_session()
  session.set_image(IMAGE)
  result = None
  for click in CLICKS:
    result = session.click(*click)
  depth = np.asarray(session.predictor.image_state["depth"][0])
  model_yx = session.predictor.transform.to_model_coords(np.array([c[:2] for c in CLICKS], np.float32))
  at = [depth[int(round(y)), int(round(x))] for y, x in model_yx]
  assert result.order_positive == pytest.approx((at[0] + at[2]) / 2, abs=1e-6)
  assert result.order_negative == pytest.approx([at[1]], abs=1e-6)


def test_attention_before_order_equals_the_attention_without_its_order_bias(engine):
  """The 'before' view, recovered from the sown weights, equals softmax(QK^T / sqrt(d)) computed
  here from the order-aware attention's own inputs and q/k weights, without the order bias."""
  session = engine.new_session()
  session.set_image(IMAGE)
  session.click(*CLICKS[0])
  result = session.click(*CLICKS[1])
  model, params = engine.model, engine.params
  inputs = []  # (queries, keys) of each order-aware attention, in block order

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, CrossAttention) and kwargs.get("bias") is not None:
      inputs.append((args[0], args[1]))
    return next_fun(*args, **kwargs)

  clicks = session.predictor.model_clicks(session.clicks)
  ph, pw = session.predictor.transform.to_model_matrices()
  prev_model = (ph @ session.results[0].probs @ pw.T)[None]
  with nn.intercept_methods(record):
    model.apply({"params": params}, session.predictor.image_state, clicks, prev_model,
                np.array([True]), method=ois.OIS.decode)
  heads = model.config.num_heads
  slots = [0, engine.num_positive]  # click 1 positive (slot 0), click 2 the first negative slot
  assert len(inputs) == engine.num_blocks
  for block, (queries, keys) in enumerate(inputs):
    p = params[f"blocks_{block}"]["order_attn"]["attn"]
    q = np.asarray(queries[0]) @ np.asarray(p["q"]["kernel"]) + np.asarray(p["q"]["bias"])
    k = np.asarray(keys[0]) @ np.asarray(p["k"]["kernel"]) + np.asarray(p["k"]["bias"])
    q, k = q.reshape(q.shape[0], heads, -1), k.reshape(k.shape[0], heads, -1)
    logits = np.einsum("nhd,thd->hnt", q, k) / np.sqrt(q.shape[-1])
    plain = np.exp(logits - logits.max(-1, keepdims=True))
    plain = (plain / plain.sum(-1, keepdims=True)).mean(0)  # (N, T), mean over heads
    np.testing.assert_allclose(result.attention["order_attn_without_order"][block], plain[slots],
                               atol=1e-5)
    assert np.abs(result.attention["order_attn"][block] - plain[slots]).max() > 1e-3  # the bias acts


def test_views_have_the_display_size_and_mark_the_clicks(engine):
  session = engine.new_session()
  session.set_image(IMAGE)
  for click in CLICKS:
    session.click(*click)
  shown = render.display_size(IMAGE.shape[:2])
  assert max(shown) == render.DISPLAY_SIDE
  overlay = render.overlay(session.image, session.mask(), session.clicks, shown)
  assert overlay.shape == (*shown, 3) and overlay.dtype == np.uint8
  y, x = (np.array(CLICKS[1][:2]) + 0.5) * np.array(shown) / IMAGE.shape[:2] - 0.5
  np.testing.assert_array_equal(overlay[int(round(y)), int(round(x))], render.NEGATIVE_COLOR)
  assert render.depth_view(session.depth(), shown).shape == (*shown, 3)
  order_view = render.order_maps_view(session.depth(), IMAGE.shape[:2], session.clicks,
                                      session.last.order_positive, session.last.order_negative)
  tf = session.predictor.transform
  attention = render.attention_view(session.image, session.last.attention, 2, 1, session.clicks,
                                    engine.grid, tf.size, tf.resized_hw)
  for view in (order_view, attention):
    assert view.ndim == 3 and view.dtype == np.uint8 and view.shape[1] >= render.TILE_SIDE


def test_shown_pixels_map_back_into_the_image():
  hw, shown = (70, 130), render.display_size((70, 130))
  for y, x in [(0, 0), (69, 129), (35.5, 64.2)]:
    sy = (y + 0.5) * shown[0] / hw[0] - 0.5
    sx = (x + 0.5) * shown[1] / hw[1] - 0.5
    assert render.to_image_coords(sx, sy, hw, shown) == pytest.approx((y, x), abs=1e-4)
  assert render.to_image_coords(-3, 10_000, hw, shown) == (69.0, 0.0)  # clipped into the image


def test_external_depth_models_are_refused_with_one_line():
  cfg = ois_tiny.get_config()
  cfg.model.depth_source = "external"
  predictor = Predictor(ois.build_model(cfg.model), {}, cfg)
  with pytest.raises(ConfigError, match="external depth map.*own depth head"):
    engine_lib.Engine(predictor, "a quickstart model", 0.49)


def test_warm_up_compiles_for_the_gallery_size(engine):
  assert engine.warm_up((12, 16)) >= 0
  session = engine.new_session()
  session.set_image(np.zeros((12, 16, 3), np.uint8))
  assert session.compile_ms == 0.0  # already compiled for 12x16
  jax.block_until_ready(session.click(3, 3, True).probs)
