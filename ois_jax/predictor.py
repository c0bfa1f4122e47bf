"""`Predictor`: interactive segmentation of one image at a time, in the manner of SAM's predictor.

    predictor = Predictor.from_checkpoint("ckpt/")        # or Predictor.from_config(config)
    predictor.set_image(image)                             # (H, W, 3) uint8, encoded once
    probs = predictor.predict([(y, x, True)])              # (H, W) float32 probabilities
    probs = predictor.predict([(y, x, True), (y2, x2, False)], prev_mask=probs)

Clicks are (y, x, is_positive) in original pixel coordinates. Both the image encoding and the
per-click decoding are jitted; clicks sit in fixed slots, so adding clicks never recompiles
(one compilation per image size, for the matrices that map back to the original resolution).
"""

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax import transforms
from ois_jax.errors import ClickError, ImageError
from ois_jax.models import ois
from ois_jax.models.prompts import Clicks


class Predictor:
  """Holds a model, its params and the state of the current image."""

  def __init__(self, model: ois.OIS, params: dict, config: Any = None):
    self.model = model
    self.params = params
    self.config = config
    c = model.config
    self.input_size = c.input_size
    self.num_positive = c.num_positive_slots
    self.num_negative = c.num_negative_slots
    self._encode, self._predict = _compiled(model)
    self._state = None
    self._tf = None

  @classmethod
  def from_config(cls, config, params: dict | None = None, seed: int = 0) -> "Predictor":
    """config: a full config (with .model) or its model section; params None -> random init."""
    model_cfg = config.model if hasattr(config, "model") else config
    model = ois.build_model(model_cfg)
    if params is None:
      params = ois.init_params(model, jax.random.key(seed))
    return cls(model, params, config)

  @classmethod
  def from_checkpoint(cls, path: str) -> "Predictor":
    """An OIS checkpoint directory written by `ois_jax.checkpoint.save_checkpoint`."""
    from ois_jax.checkpoint import load_checkpoint  # lazy: orbax is slow to import
    from ois_jax.errors import CheckpointError
    params, config = load_checkpoint(path)
    model_cfg = config.get("model")
    if not isinstance(model_cfg, dict):
      raise CheckpointError(f"{path}: not an OIS checkpoint (its config names model {model_cfg!r}); "
                            "a DepthAnythingV2 checkpoint is loaded with ois_jax.models.ois.init_from_depth")
    return cls.from_config(model_cfg, params=params)

  # --- per image --------------------------------------------------------------------
  def set_image(self, image: np.ndarray, depth: np.ndarray | None = None) -> None:
    """Encode an (H, W, 3) uint8 RGB image once. depth (H, W) only for depth_source='external'."""
    x, tf = transforms.preprocess(image, self.input_size)
    depth_model = None
    if self.model.config.depth_source == "external":
      if depth is None or np.shape(depth) != tf.orig_hw:
        raise ImageError(f"this model takes an external depth map of shape {tf.orig_hw}, "
                         f"got {None if depth is None else np.shape(depth)}")
      depth_model = jnp.asarray(transforms.map_to_model(depth, tf))[None]
    self._state = self._encode(self.params, jnp.asarray(x)[None], depth_model)
    self._tf = tf
    self._back = tuple(jnp.asarray(m) for m in tf.resize_back_matrices())
    self._to_model = tuple(jnp.asarray(m) for m in tf.to_model_matrices())

  def reset_image(self) -> None:
    self._state = self._tf = None

  @property
  def is_image_set(self) -> bool:
    return self._state is not None

  # --- per click ---------------------------------------------------------------------
  def predict(self, clicks: Sequence[tuple[float, float, bool]], prev_mask: np.ndarray | None = None,
              return_logits: bool = False) -> np.ndarray:
    """clicks [(y, x, is_positive), ...] in original pixels; prev_mask (H, W) bool or
    probabilities of the previous round (None in the first). Returns (H, W) float32
    probabilities (logits if return_logits)."""
    if self._state is None:
      raise ClickError("predict() called before set_image(): set an image first")
    h, w = self._tf.orig_hw
    model_clicks = self._clicks(clicks, h, w)
    if prev_mask is None:
      prev, has_prev = jnp.zeros((h, w), jnp.float32), False
    else:
      prev_mask = np.asarray(prev_mask)
      if prev_mask.shape != (h, w):
        raise ClickError(f"prev_mask has shape {prev_mask.shape}, expected the image's {(h, w)}")
      prev, has_prev = jnp.asarray(prev_mask, jnp.float32), True
    out = self._predict(self.params, self._state, model_clicks, prev, jnp.asarray([has_prev]),
                        self._to_model, self._back, return_logits)
    return np.asarray(out)

  def _clicks(self, clicks, h, w) -> Clicks:
    clicks = list(clicks)
    if not clicks:
      raise ClickError("no clicks given: predict() needs at least one (y, x, is_positive) click")
    parsed = []
    for i, click in enumerate(clicks):
      try:
        y, x, is_positive = click
        y, x = float(y), float(x)
      except (TypeError, ValueError):
        raise ClickError(f"click {i} is {click!r}; expected (y, x, is_positive)") from None
      if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
        raise ClickError(f"click {i} at (y={y:g}, x={x:g}) is outside the {h}x{w} image")
      parsed.append((y, x, bool(is_positive)))
    n_pos = sum(p for _, _, p in parsed)
    if n_pos > self.num_positive:
      raise ClickError(f"{n_pos} positive clicks; the model has {self.num_positive} positive slots")
    if len(parsed) - n_pos > self.num_negative:
      raise ClickError(f"{len(parsed) - n_pos} negative clicks; the model has "
                       f"{self.num_negative} negative slots")
    yx = self._tf.to_model_coords(np.array([(y, x) for y, x, _ in parsed], np.float32))
    model_clicks = [(float(a), float(b), p) for (a, b), (_, _, p) in zip(yx, parsed)]
    return Clicks.from_lists([model_clicks], self.num_positive, self.num_negative)


@functools.lru_cache(maxsize=16)
def _compiled(model: ois.OIS):
  """Jitted (encode, predict) shared by every Predictor of an equal model config."""
  return (jax.jit(functools.partial(_encode, model)),
          jax.jit(functools.partial(_predict, model), static_argnums=7))


def _encode(model, params, images, depth):
  return ois.encode_image(model, params, images, depth)


def _predict(model, params, state, clicks, prev, has_prev, to_model, back, return_logits):
  """prev (H, W) original-res probabilities -> model space, decode, map back to (H, W)."""
  ph, pw = to_model
  prev_model = (ph @ prev @ pw.T)[None]
  logits = ois.decode(model, params, state, clicks, prev_model, has_prev)[0]  # (S, S)
  mh, mw = back
  out = mh @ logits @ mw.T
  return out if return_logits else jax.nn.sigmoid(out)
