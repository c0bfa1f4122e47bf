"""`Predictor`: interactive segmentation of one image at a time, in the manner of SAM's predictor.

    predictor = Predictor.from_checkpoint("runs/my_ois")  # an export, a training workdir or a step
    predictor = Predictor.from_pretrained("ois-tiny-procedural")  # a bundled model
    predictor.set_image(image)                             # (H, W, 3) uint8, encoded once
    probs = predictor.predict([(y, x, True)])              # (H, W) float32 probabilities
    probs = predictor.predict([(y, x, True), (y2, x2, False)], prev_mask=probs)

Clicks are (y, x, is_positive) in original pixel coordinates. Both the image encoding and the
per-click decoding are jitted at the model's fixed input size; clicks sit in fixed slots, so
adding clicks never recompiles, and the maps between the image's resolution and the model's
(previous mask in, probabilities out) run in NumPy outside the compiled decoder, so a new image
size never recompiles either. Compiled programs are kept in the persistent compilation
cache (`ois_jax.compilation_cache`); the first use of each is logged ("compiling ...").

Threads: a Predictor holds one image, so it belongs to the thread that called `set_image`.
`predict` (and `model_clicks`) from any other thread raises ClickError instead of decoding the
other thread's image; each thread takes its own Predictor, and `p.for_another_thread()` makes
one that shares the compiled programs and the weights (nothing is copied or compiled again).
Calls are atomic: a `set_image` running in another thread never mixes two images in one
`predict`. `check_thread=False` turns the check off for threads that take turns on one image
(the demo's request threads, one user each).
"""

import functools
import logging
import threading
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax import compilation_cache, transforms
from ois_jax.errors import ClickError, ConfigError, ImageError
from ois_jax.models import ois
from ois_jax.models.prompts import Clicks

log = logging.getLogger("ois_jax.predictor")


class _Image(NamedTuple):
  """All per-image state, replaced in one assignment (so a reader never sees two images)."""
  state: dict               # the model's per-image state (encode_image)
  tf: transforms.Transform  # how the image sits in the model input
  back: tuple               # (Mh, Mw) as _Taps: model space -> original resolution
  to_model: tuple           # (Ph, Pw) as _Taps: original resolution -> model space
  thread: int               # threading.get_ident() of the thread that called set_image


class Predictor:
  """Holds a model, its params and the state of the current image (one thread's; see above)."""

  def __init__(self, model: ois.OIS, params: dict, config: Any = None, check_thread: bool = True):
    compilation_cache.enable()
    self.check_thread = bool(check_thread)
    self.model = model
    self.params = params
    self.config = config
    c = model.config
    self.input_size = c.input_size
    self.num_positive = c.num_positive_slots
    self.num_negative = c.num_negative_slots
    self.source = "random initialisation"  # where the weights come from, for messages
    self._compiled = _compiled(model)
    self._encode, self._predict = self._compiled.fns["encode"], self._compiled.fns["decode"]
    self._image: _Image | None = None

  def for_another_thread(self) -> "Predictor":
    """A Predictor of the same model and weights, without an image, for another thread."""
    other = type(self)(self.model, self.params, self.config, check_thread=self.check_thread)
    other.source = self.source
    return other

  def _current(self, what: str) -> _Image:
    """The current image for `what` (a method name); ClickError when there is none, or when
    another thread set it."""
    image = self._image  # one read: a concurrent set_image replaces it whole
    if image is None:
      raise ClickError(f"{what} called before set_image(): set an image first")
    if self.check_thread and image.thread != threading.get_ident():
      raise ClickError(f"{what} called from another thread than the set_image() of this "
                       "Predictor's image: it would answer for that thread's image. Give each "
                       "thread its own Predictor (predictor.for_another_thread() shares the "
                       "compiled programs and weights), or pass check_thread=False to threads "
                       "that take turns on one image")
    return image

  @classmethod
  def from_config(cls, config, params: dict | None = None, seed: int = 0) -> "Predictor":
    """config: a full config (with .model) or its model section; params None -> random init.

    Given params are checked against the model the config builds (all mismatches in one
    CheckpointError)."""
    compilation_cache.enable()  # before init_params compiles
    model_cfg = config.model if hasattr(config, "model") else config
    if not hasattr(model_cfg, "items"):
      raise ConfigError(f"config must be a run config (with .model) or its model section, got "
                        f"{type(config).__name__}")
    model = ois.build_model(model_cfg)
    if params is None:
      params = ois.init_params(model, jax.random.key(seed))
    else:
      ois.check_params(model, params)
    return cls(model, params, config)

  @classmethod
  def from_checkpoint(cls, path: str, log=None) -> "Predictor":
    """OIS weights from an export (`save_checkpoint` folder, W/best, W/final), a training workdir
    (its best step when validation ran, else its latest) or one training step W/checkpoints/N.
    `log(message)` hears which weights of a workdir were chosen."""
    from ois_jax.checkpoint import load_weights  # lazy: orbax is slow to import
    return cls._from_weights(load_weights(path, log=log))

  @classmethod
  def from_pretrained(cls, name: str) -> "Predictor":
    """A model bundled with ois-jax, e.g. "ois-tiny-procedural" (see ois_jax.pretrained)."""
    from ois_jax import pretrained
    return cls._from_weights(pretrained.load(name))

  @classmethod
  def _from_weights(cls, weights) -> "Predictor":
    import ml_collections
    predictor = cls.from_config(ml_collections.ConfigDict(weights.config), params=weights.params)
    predictor.source = weights.source
    return predictor

  # --- per image --------------------------------------------------------------------
  def set_image(self, image: np.ndarray, depth: np.ndarray | None = None) -> None:
    """Encode an (H, W, 3) uint8 RGB image once. depth (H, W) only for depth_source='external'."""
    x, tf = transforms.preprocess(image, self.input_size)
    depth_model = None
    if self.model.config.depth_source == "external":
      if depth is None or np.shape(depth) != tf.orig_hw:
        raise ImageError(f"this model takes an external depth map of shape {tf.orig_hw}, "
                         f"got {None if depth is None else np.shape(depth)}")
      depth_model = jnp.asarray(transforms.map_to_model(_check_depth(depth), tf))[None]
    state = self._compiled.call("encode", self.params, jnp.asarray(x)[None], depth_model)
    # The resize matrices have <= 2 non-zeros per row: applied as taps, they need no BLAS call
    # (a 2-core machine under load made the dense NumPy matmuls 200 ms per click).
    self._image = _Image(state, tf, tuple(_Taps(m) for m in tf.resize_back_matrices()),
                         tuple(_Taps(m) for m in tf.to_model_matrices()), threading.get_ident())

  def reset_image(self) -> None:
    self._image = None

  @property
  def is_image_set(self) -> bool:
    return self._image is not None

  @property
  def image_state(self) -> dict | None:
    """The encoded image (`ois.encode_image` output, batch 1), e.g. its 'depth' (1, S, S) in
    [0, 1]; None before set_image."""
    image = self._image
    return None if image is None else image.state

  @property
  def transform(self) -> transforms.Transform | None:
    """How the current image sits in the model input (coordinates, resize matrices)."""
    image = self._image
    return None if image is None else image.tf

  def model_clicks(self, clicks: Sequence[tuple[float, float, bool]]) -> Clicks:
    """Validated clicks in original pixels -> the model's fixed-slot `Clicks` (batch 1)."""
    image = self._current("model_clicks()")
    return self._clicks(clicks, image.tf)

  # --- per click ---------------------------------------------------------------------
  def predict(self, clicks: Sequence[tuple[float, float, bool]], prev_mask: np.ndarray | None = None,
              return_logits: bool = False) -> np.ndarray:
    """clicks [(y, x, is_positive), ...] in original pixels; prev_mask (H, W) bool or
    probabilities of the previous round (None in the first). Returns (H, W) float32
    probabilities (logits if return_logits)."""
    image = self._current("predict()")
    h, w = image.tf.orig_hw
    model_clicks = self._clicks(clicks, image.tf)
    s = self.input_size
    if prev_mask is None:
      prev, has_prev = np.zeros((s, s), np.float32), False
    else:
      ph, pw = image.to_model
      prev, has_prev = pw.apply(ph.apply(_check_prev_mask(prev_mask, (h, w)), 0), 1), True
    logits = self._compiled.call("decode", self.params, image.state, model_clicks,
                                 jnp.asarray(prev)[None], jnp.asarray([has_prev]))
    # Back to (H, W) on the host (Mh @ logits @ Mw.T): no compiled program depends on the image size.
    mh, mw = image.back
    out = mw.apply(mh.apply(np.asarray(logits[0]), 0), 1)
    return out if return_logits else _sigmoid(out)

  def _clicks(self, clicks, tf: transforms.Transform) -> Clicks:
    h, w = tf.orig_hw
    if isinstance(clicks, (str, bytes)) or not hasattr(clicks, "__iter__"):
      raise ClickError(f"clicks must be a list of (y, x, is_positive), got {type(clicks).__name__}")
    clicks = list(clicks)
    if not clicks:
      raise ClickError("no clicks given: predict() needs at least one (y, x, is_positive) click")
    parsed = [check_click(click, i, (h, w)) for i, click in enumerate(clicks)]
    n_pos = sum(p for _, _, p in parsed)
    if n_pos > self.num_positive:
      raise ClickError(f"{n_pos} positive clicks; the model has {self.num_positive} positive slots")
    if len(parsed) - n_pos > self.num_negative:
      raise ClickError(f"{len(parsed) - n_pos} negative clicks; the model has "
                       f"{self.num_negative} negative slots")
    yx = tf.to_model_coords(np.array([(y, x) for y, x, _ in parsed], np.float32))
    model_clicks = [(float(a), float(b), p) for (a, b), (_, _, p) in zip(yx, parsed)]
    return Clicks.from_lists([model_clicks], self.num_positive, self.num_negative)


def check_click(click, index: int, hw: tuple[int, int]) -> tuple[float, float, bool]:
  """(y, x, is_positive) with finite coordinates inside the (H, W) image and a real boolean label
  (True / False, 1 / 0); ClickError (a ValueError) otherwise. A string label such as "False" is
  refused: it would be truthy."""
  try:
    y, x, label = click
  except (TypeError, ValueError):
    raise ClickError(f"click {index} is {click!r}; expected (y, x, is_positive)") from None
  if isinstance(label, (bool, np.bool_)) or (isinstance(label, (int, np.integer)) and label in (0, 1)):
    positive = bool(label)
  else:
    raise ClickError(f"click {index} has label {label!r}; expected True (positive) or False (negative)")
  try:
    if isinstance(y, (str, bytes)) or isinstance(x, (str, bytes)):
      raise TypeError
    y, x = float(y), float(x)
  except (TypeError, ValueError):
    raise ClickError(f"click {index} is {click!r}; y and x must be numbers") from None
  h, w = hw
  if not (np.isfinite(y) and np.isfinite(x) and 0 <= y <= h - 1 and 0 <= x <= w - 1):
    raise ClickError(f"click {index} at (y={y:g}, x={x:g}) is outside the {h}x{w} image")
  return y, x, positive


def _check_depth(depth) -> np.ndarray:
  """An external (H, W) depth map of finite numbers, as float32: one NaN or inf pixel would make
  every probability NaN (the depth is normalised over the whole image)."""
  values = np.asarray(depth)
  if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
    raise ImageError(f"the depth map has dtype {values.dtype}; expected numbers")
  return _finite_float32(values, ImageError, "the depth map", "finite depths (fill the holes first)")


def _finite_float32(values, error: type, name: str, expected: str) -> np.ndarray:
  """`values` as float32; `error` naming how many are NaN or infinite, if any."""
  values = values.astype(np.float32)
  bad = ~np.isfinite(values)
  if bad.any():
    raise error(f"{name} has {int(bad.sum())} NaN or infinite values; expected {expected}")
  return values


def _check_prev_mask(prev_mask, hw: tuple[int, int]) -> np.ndarray:
  """The previous round's (H, W) bool mask or probabilities in [0, 1], as float32."""
  try:
    values = np.asarray(prev_mask)
  except (TypeError, ValueError):
    raise ClickError(f"prev_mask is not an array ({type(prev_mask).__name__})") from None
  if values.shape != hw:
    raise ClickError(f"prev_mask has shape {values.shape}, expected the image's {hw}")
  if values.dtype != bool and not np.issubdtype(values.dtype, np.number):
    raise ClickError(f"prev_mask has dtype {values.dtype}; expected bool or probabilities in [0, 1]")
  values = _finite_float32(values, ClickError, "prev_mask", "probabilities in [0, 1]")
  if values.min(initial=0.0) < 0.0 or values.max(initial=0.0) > 1.0:
    raise ClickError(f"prev_mask values span [{values.min():g}, {values.max():g}]; expected "
                     "probabilities in [0, 1] (pass the previous predict() output)")
  return values


@functools.lru_cache(maxsize=16)
def _compiled(model: ois.OIS) -> "_Compiled":
  return _Compiled(model)


class _Compiled:
  """Jitted encode and decode shared by every Predictor of an equal model config.

  Both run at the model's input size only, so each compiles once per process (loaded from the
  persistent compilation cache in later processes); the first call of each is announced.
  """

  def __init__(self, model: ois.OIS):
    size = model.config.input_size
    self.fns = {"encode": jax.jit(functools.partial(ois.encode_image, model)),
                "decode": jax.jit(functools.partial(ois.decode, model))}
    self.what = {"encode": f"the image encoder for {size}x{size} model inputs",
                 "decode": f"the click decoder for {size}x{size} model inputs"}
    self.seen = set()

  def call(self, name: str, *args):
    fn = self.fns[name]
    signature = (name, str(jax.tree.map(lambda a: (np.shape(a), str(a.dtype)), args[1:])))
    if signature in self.seen:
      return fn(*args)
    with compilation_cache.announce(self.what[name], log):
      out = jax.block_until_ready(fn(*args))
    self.seen.add(signature)
    return out


class _Taps:
  """A (R, C) matrix with at most two non-zeros per row (a bilinear resize, zero rows for padding),
  applied along one axis of an array as two gathers and a weighted sum."""

  def __init__(self, matrix: np.ndarray):
    if matrix.shape[1] == 1:  # a 1-pixel side: one tap, and a second one of weight 0
      self.index = np.zeros((matrix.shape[0], 2), np.int64)
      self.weight = np.stack([matrix[:, 0], np.zeros(matrix.shape[0])], axis=1).astype(np.float32)
      return
    self.index = np.argsort(-np.abs(matrix), axis=1, kind="stable")[:, :2]  # (R, 2) the non-zeros
    self.weight = np.take_along_axis(matrix, self.index, axis=1).astype(np.float32)  # (R, 2)

  def apply(self, x: np.ndarray, axis: int) -> np.ndarray:
    """matrix @ x for axis 0, x @ matrix.T for axis 1; x (C, n) or (n, C) -> (R, n) or (n, R)."""
    shape = (-1, 1) if axis == 0 else (1, -1)
    w0, w1 = self.weight[:, 0].reshape(shape), self.weight[:, 1].reshape(shape)
    return np.take(x, self.index[:, 0], axis=axis) * w0 + np.take(x, self.index[:, 1], axis=axis) * w1


def _sigmoid(x: np.ndarray) -> np.ndarray:
  """Logistic in float32 without overflow warnings for large |x|."""
  return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)
