"""The demo's model side, without any web framework: one `Engine` per process (the model, its
params, the jitted decode with the views), one `Session` per browser session (its own image,
clicks and masks).

Per image, `Session.set_image` encodes once (`Predictor.set_image`); per click, `Session.click`
runs one jitted decode that returns the probabilities at the original resolution together with
what the views show, so the views cost no second decode:
- the reference depths of the order maps (`order.order_values`: the positive clicks' mean depth
  and each negative click's depth), from which `render` draws the maps |R - value| (Eq. 1-2);
- the attention weights sown by every object-aware and order-aware attention
  (`intermediates/.../weights`), averaged over heads, and, for the order-aware attention, the
  same attention without the order bias ("before", paper Figures 6-7).
The previous round's probabilities feed back as in the click protocol (`Predictor.predict`).
"""

import dataclasses
import functools
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax import transforms
from ois_jax.errors import ClickError, ConfigError, ImageError
from ois_jax.models import ois, order
from ois_jax.predictor import Predictor

# Images whose longer side exceeds this are downscaled (with a notice) before encoding: masks,
# probabilities and downloads are then at the downscaled size.
MAX_SIDE = 2048


@dataclasses.dataclass
class ClickResult:
  """What one decode returns (host arrays)."""
  probs: np.ndarray              # (H, W) float32 probabilities at the image's resolution
  order_positive: float | None   # the positive clicks' mean depth (None: no positive click)
  order_negative: list[float]    # each negative click's depth, in click order
  attention: dict                # kind -> (blocks, clicks, tokens) float32, mean over heads, the
                                 # clicks' slots in click order
  decode_ms: float               # the jitted decode, device to host included


class Engine:
  """The model shared by all sessions: params, the jitted decode with views, counters."""

  def __init__(self, predictor: Predictor, source: str, threshold: float):
    c = predictor.model.config
    self.check_model(c, source)
    self.model = predictor.model
    self.params = predictor.params
    self.config = predictor.config
    self.source = source
    self.threshold = float(threshold)
    self.grid = c.grid
    self.num_positive = c.num_positive_slots
    self.num_negative = c.num_negative_slots
    self.num_blocks = c.num_blocks if c.use_sparse else 0
    self._decode = _compiled_views(self.model)
    self._lock = threading.Lock()
    self._sizes = set()  # image sizes the decode is compiled for
    self.encodes = 0     # images encoded, all sessions together (the tests count them)
    self.decodes = 0

  @staticmethod
  def check_model(model_config, source: str):
    """ConfigError unless the model makes its own depth (the demo has no depth input)."""
    if model_config.depth_source != "head":
      raise ConfigError(f"{source} takes an external depth map (model.depth_source="
                        f"{model_config.depth_source!r}); the demo needs a model with its own depth head")

  @classmethod
  def from_weights(cls, config, params, source: str, seed: int = 0) -> "Engine":
    cls.check_model(config.model, source)  # before any initialisation is compiled
    predictor = Predictor.from_config(config, params=params, seed=seed)
    return cls(predictor, source, float(config.eval.threshold))

  def new_session(self) -> "Session":
    return Session(self)

  def warm_up(self, hw: tuple[int, int] = (120, 160)) -> float:
    """Compile the encode, and the decode for (H, W) images, before the first user waits for
    them. Returns the seconds it took."""
    start = time.perf_counter()
    self.new_session().set_image(np.zeros((*hw, 3), np.uint8), "warm-up")
    return time.perf_counter() - start

  def _first_of_size(self, hw) -> bool:
    with self._lock:
      first = tuple(hw) not in self._sizes
      self._sizes.add(tuple(hw))
    return first

  def _count(self, what: str) -> None:
    with self._lock:
      setattr(self, what, getattr(self, what) + 1)


class Session:
  """One user's image, clicks and masks. Clicks are (y, x, is_positive) in image pixels."""

  def __init__(self, engine: Engine):
    self.engine = engine
    # Its own Predictor object: the jitted functions and the params are shared (not copied),
    # the encoded image is this session's alone. The server's request threads take turns on it
    # (one user's events run one at a time), hence no thread check.
    self.predictor = Predictor(engine.model, engine.params, engine.config, check_thread=False)
    self.image = None       # (H, W, 3) uint8, as encoded
    self.name = ""
    self.clicks: list[tuple[float, float, bool]] = []
    self.results: list[ClickResult] = []  # one per click, for undo
    self.encode_ms = 0.0
    self.compile_ms = 0.0  # the decode's compilation for a new image size (0: already compiled)
    self._matrices = None

  # --- per image -----------------------------------------------------------------------
  def set_image(self, image: np.ndarray, name: str = "image", max_side: int = MAX_SIDE) -> str:
    """Encode (H, W, 3) uint8 once; clicks and masks are reset. Returns a notice ("" if none),
    e.g. that the image was downscaled to `max_side`."""
    image = transforms.check_image(image)
    notice = ""
    h, w = image.shape[:2]
    if max(h, w) > max_side:
      scale = max_side / max(h, w)
      size = (max(1, round(h * scale)), max(1, round(w * scale)))
      image = transforms.resize_image(image, size)
      notice = (f"{name} is {w}x{h}, larger than the demo's limit of {max_side} px per side: "
                f"downscaled to {size[1]}x{size[0]}; masks and downloads are at that size")
    start = time.perf_counter()
    self.predictor.set_image(image)
    jax.block_until_ready(self.predictor.image_state)
    self.encode_ms = (time.perf_counter() - start) * 1e3
    self.engine._count("encodes")
    tf = self.predictor.transform
    self._matrices = (tuple(jnp.asarray(m) for m in tf.to_model_matrices()),
                      tuple(jnp.asarray(m) for m in tf.resize_back_matrices()))
    self.image, self.name = image, name
    self.clicks, self.results = [], []
    self.compile_ms = 0.0
    if self.engine._first_of_size(image.shape[:2]):  # compile now, not at the first click
      start = time.perf_counter()
      self._run([(0.0, 0.0, True)], None)
      self.compile_ms = (time.perf_counter() - start) * 1e3
    return notice

  @property
  def has_image(self) -> bool:
    return self.image is not None

  def depth(self) -> np.ndarray:
    """The model's own normalised depth of the image, (h', w') float32 in [0, 1] (model input
    resolution, padding cropped)."""
    self._need_image()
    h, w = self.predictor.transform.resized_hw
    return np.asarray(self.predictor.image_state["depth"][0, :h, :w])

  # --- per click -----------------------------------------------------------------------
  def click(self, y: float, x: float, positive: bool) -> ClickResult:
    """Add a click and decode; the previous probabilities feed back. ClickError (state
    unchanged) for a click before any image, outside it, or beyond the model's slots."""
    self._need_image()
    clicks = self.clicks + [(float(y), float(x), bool(positive))]
    result = self._run(clicks, self.results[-1].probs if self.results else None)
    self.clicks, self.results = clicks, self.results + [result]
    return result

  def undo(self) -> bool:
    """Drop the last click (its mask goes with it). False when there was none."""
    if not self.clicks:
      return False
    self.clicks, self.results = self.clicks[:-1], self.results[:-1]
    return True

  def reset(self) -> None:
    self.clicks, self.results = [], []

  @property
  def last(self) -> ClickResult | None:
    return self.results[-1] if self.results else None

  def mask(self) -> np.ndarray | None:
    """(H, W) bool: probabilities > the config's eval threshold (None before any click)."""
    return None if self.last is None else self.last.probs > self.engine.threshold

  def _need_image(self) -> None:
    if self.image is None:
      raise ClickError("no image yet: upload an image or pick a scene from the gallery first")

  def _run(self, clicks, prev: np.ndarray | None) -> ClickResult:
    model_clicks = self.predictor.model_clicks(clicks)  # validates (ClickError)
    h, w = self.predictor.transform.orig_hw
    prev = np.zeros((h, w), np.float32) if prev is None else prev
    to_model, back = self._matrices
    start = time.perf_counter()
    out = self.engine._decode(self.engine.params, self.predictor.image_state, model_clicks,
                              jnp.asarray(prev), jnp.asarray([bool(self.results)]), to_model, back)
    out = jax.device_get(out)
    decode_ms = (time.perf_counter() - start) * 1e3
    self.engine._count("decodes")
    n_pos = sum(1 for c in clicks if c[2])
    n_neg = len(clicks) - n_pos
    slots = _slots(clicks, self.engine.num_positive)
    return ClickResult(probs=np.asarray(out["probs"]),
                       order_positive=float(out["order_positive"]) if n_pos else None,
                       order_negative=[float(v) for v in out["order_negative"][:n_neg]],
                       attention={k: np.asarray(v)[:, slots] for k, v in out["attention"].items()},
                       decode_ms=decode_ms)


def _slots(clicks, num_positive: int) -> list[int]:
  """The model slot of each click: positives fill slots 0.., negatives num_positive.. (as
  `Clicks.from_lists`)."""
  slots, n_pos, n_neg = [], 0, 0
  for _, _, positive in clicks:
    slots.append(n_pos if positive else num_positive + n_neg)
    n_pos, n_neg = n_pos + bool(positive), n_neg + (not positive)
  return slots


def load_image_file(path: str, max_pixels: int) -> np.ndarray:
  """An uploaded file -> (H, W, 3) uint8 via `ois_jax.io.load_image` (any mode, EXIF applied);
  ImageError for a non-image, a truncated file, or more than `max_pixels` pixels (checked on the
  header, before decoding)."""
  from PIL import Image, UnidentifiedImageError

  from ois_jax.io import load_image
  try:
    with Image.open(path) as img:
      w, h = img.size
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
    w = h = 0  # load_image says what is wrong with it
  if w * h > max_pixels:
    raise ImageError(f"the image is {w}x{h} ({w * h / 1e6:.0f} MP), over the demo's limit of "
                     f"{max_pixels / 1e6:.0f} MP")
  return load_image(path)


@functools.lru_cache(maxsize=8)
def _compiled_views(model: ois.OIS):
  return jax.jit(functools.partial(_decode_views, model))


def _decode_views(model, params, state, clicks, prev, has_prev, to_model, back):
  """As `Predictor.predict` (prev (H, W) -> model space, decode, back to (H, W), sigmoid), with
  the sown attention weights and the order maps' reference depths beside the probabilities."""
  c = model.config
  ph, pw = to_model
  prev_model = (ph @ prev @ pw.T)[None]
  logits, sown = model.apply({"params": params}, state, clicks, prev_model, has_prev,
                             method=ois.OIS.decode, mutable=["intermediates"])
  mh, mw = back
  probs = jax.nn.sigmoid(mh @ logits[0] @ mw.T)
  pos_mean, neg_values = order.order_values(state["depth"], clicks.coords, clicks.valid,
                                            c.num_positive_slots)
  attention = {}
  if c.use_sparse:
    order_map = order.order_maps_tokens(state["depth"], clicks.coords, clicks.valid,
                                        c.num_positive_slots, c.order_maps)[0]  # (N, T)
    for kind in ("object_attn", "order_attn"):
      per_block = [sown["intermediates"][f"blocks_{i}"][kind]["attn"]["weights"][0][0]
                   for i in range(c.num_blocks) if kind in sown["intermediates"][f"blocks_{i}"]]
      if not per_block:  # the ablation has no such attention
        continue
      weights = jnp.stack(per_block)  # (blocks, heads, N, T)
      attention[kind] = weights.mean(axis=1)
      if kind == "order_attn":
        sigmas = jnp.stack([jax.nn.softplus(params[f"blocks_{i}"]["order_attn"]["sigma_raw"])
                            for i in range(c.num_blocks)])
        attention["order_attn_without_order"] = _without_order_bias(weights, sigmas, order_map)
  return {"probs": probs, "order_positive": pos_mean[0], "order_negative": neg_values[0],
          "attention": attention}


def _without_order_bias(weights, sigmas, order_map):
  """The order-aware attention with its bias -sigma * M taken out, mean over heads.

  weights = softmax(L - sigma M) (blocks, heads, N, T), so softmax(L) = softmax(log(weights) +
  sigma M) exactly; the floor only matters for a weight that underflowed to 0 in float32, i.e.
  a token the order bias suppressed by more than e^-87."""
  log_weights = jnp.log(jnp.maximum(weights, jnp.finfo(jnp.float32).tiny))
  plain = jax.nn.softmax(log_weights + sigmas[:, None, None, None] * order_map[None, None], axis=-1)
  return plain.mean(axis=1)
