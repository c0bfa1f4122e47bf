"""The Label Studio ML backend protocol over a `Predictor`, without the web layer (server.py).

Label Studio asks `/predict` with the task and, in interactive mode, the context: the smart
keypoints of the region being drawn (`keypointlabels`, `is_positive`, x / y in percent of the
image). The answer is one `brushlabels` region in Label Studio's RLE, for the keypoints' label.

- The label config must hold an `Image`, a `BrushLabels` and a `KeyPointLabels smart="true"`
  on that image; the keypoints' label must be one of the brush labels.
- A keypoint at (x %, y %) of a W x H image is the click (y / 100 * H - 0.5, x / 100 * W - 0.5)
  in pixel-centre coordinates, clipped to the image (0 % and 100 % are its outer edges).
- Each task's image is encoded once and kept in an LRU cache bounded in entries and bytes; the
  next click on the task only decodes. The previous mask is kept per task: when a request's
  clicks extend the last request's clicks of that task, the last probabilities are the
  previous mask (as `Predictor.predict(..., prev_mask=)` in a click loop), else none.
- State is keyed by task, never by connection; each task has its own lock, so concurrent
  requests for different tasks run side by side and never see each other's image or mask.
- Every bad request raises `BadRequest` (a ValueError) with the HTTP status and one line.
"""

import collections
import functools
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import jax
import numpy as np

from ois_jax.errors import OISError
from ois_jax.label_studio import rle
from ois_jax.label_studio.images import ImageFetchError, ImageSource
from ois_jax.predictor import Predictor

# The label config to paste into a project (docs/label_studio.md): an Image, its BrushLabels and
# smart KeyPointLabels with the same label.
EXAMPLE_LABEL_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Object" background="#ff0000"/>
  </BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="Object" smart="true" background="#00ff00" showInline="true"/>
  </KeyPointLabels>
</View>"""
CACHE_ENTRIES = 16
CACHE_BYTES = 2 * 2**30


class BadRequest(OISError, ValueError):
  """A request the backend cannot answer; `status` is its 4xx HTTP status."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


class LabelConfig:
  """The tags of an interactive label config: image, brush and smart keypoints."""

  def __init__(self, xml: str):
    if not isinstance(xml, str) or not xml.strip():
      raise BadRequest("no label config in the request", 422)
    try:
      root = ET.fromstring(xml)
    except ET.ParseError as e:
      raise BadRequest(f"the label config is not valid XML ({e})", 422) from None
    tags = list(root.iter())
    images = [t for t in tags if t.tag == "Image" and t.get("name") and (t.get("value") or "").startswith("$")]
    if not images:
      raise BadRequest('unknown label config: it has no <Image name=... value="$..."> tag', 422)
    names = {t.get("name"): t for t in images}
    brushes = [t for t in tags if t.tag == "BrushLabels" and t.get("toName") in names]
    points = [t for t in tags if t.tag == "KeyPointLabels" and t.get("toName") in names and _smart(t)]
    if not brushes:
      raise BadRequest("unknown label config: it has no <BrushLabels> on an <Image> (this backend "
                       "answers brush masks)", 422)
    if not points:
      raise BadRequest('unknown label config: it has no <KeyPointLabels smart="true"> on an <Image> '
                       "(this backend is driven by smart keypoints)", 422)
    brush = brushes[0]
    self.brush_name, self.image_name = brush.get("name"), brush.get("toName")
    self.image_key = names[self.image_name].get("value")[1:]
    self.brush_labels = [label.get("value") for label in brush.iter("Label") if label.get("value")]
    self.keypoint_names = {t.get("name") for t in points if t.get("toName") == self.image_name}
    if not self.keypoint_names:
      raise BadRequest(f'unknown label config: no <KeyPointLabels smart="true"> on image '
                       f"{self.image_name!r}, the image of the <BrushLabels>", 422)


def _smart(tag) -> bool:
  """A smart keypoint tool: smart="true" (or smartOnly) on the tag or on one of its labels."""
  def on(element):
    return any((element.get(k) or "").lower() == "true" for k in ("smart", "smartOnly"))
  return on(tag) or any(on(label) for label in tag.iter("Label"))


@functools.lru_cache(maxsize=64)
def parse_config(xml: str) -> LabelConfig:
  return LabelConfig(xml)


class _Entry:
  """One task's state: its encoded image (a Predictor of its own) and its last clicks."""

  def __init__(self, key):
    self.key = key
    self.lock = threading.Lock()
    self.predictor: Predictor | None = None
    self.image_key = None  # the image value the predictor holds
    self.nbytes = 0
    self.clicks: list = []
    self.probs: np.ndarray | None = None


class Backend:
  """Answers the protocol's requests (dicts in, dicts out) for one model."""

  def __init__(self, predictor: Predictor, images: ImageSource | None = None,
               cache_entries: int = CACHE_ENTRIES, cache_bytes: int = CACHE_BYTES,
               model_version: str | None = None):
    if cache_entries < 1 or cache_bytes < 1:
      raise ValueError(f"the cache needs at least one entry and one byte, got {cache_entries} "
                       f"entries and {cache_bytes} bytes")
    self.predictor = predictor
    self.images = images or ImageSource()
    self.cache_entries, self.cache_bytes = int(cache_entries), int(cache_bytes)
    self.threshold = float(predictor.config.eval.threshold) if predictor.config is not None else 0.5
    self.model_version = model_version or f"ois-jax:{predictor.source}"
    self._entries: "collections.OrderedDict" = collections.OrderedDict()  # LRU order, newest last
    self._lock = threading.Lock()  # guards _entries and the counters
    self.counters = collections.Counter()

  # --- endpoints ----------------------------------------------------------------------------
  def health(self) -> dict:
    with self._lock:
      cached = sum(e.nbytes for e in self._entries.values())
      return {"status": "UP", "model_class": "OIS", "model_version": self.model_version,
              "encodes": self.counters["encodes"], "decodes": self.counters["decodes"],
              "cache_entries": len(self._entries), "cache_bytes": cached}

  def setup(self, payload) -> dict:
    payload = _object(payload, "the /setup body")
    if payload.get("schema") is not None:
      parse_config(payload["schema"])
    return {"model_version": self.model_version}

  def predict(self, payload) -> dict:
    payload = _object(payload, "the /predict body")
    tasks = payload.get("tasks")
    if not isinstance(tasks, list) or not tasks:
      raise BadRequest("no tasks in the request ('tasks' must be a non-empty list)")
    if len(tasks) != 1:
      raise BadRequest(f"{len(tasks)} tasks in one request; interactive requests carry one task")
    task = _object(tasks[0], "the task")
    config = parse_config(payload.get("label_config"))
    params = payload.get("params") or {}
    context = params.get("context") if isinstance(params, dict) else None
    if not isinstance(context, dict) or not context.get("result"):
      raise BadRequest("no context: this backend answers interactive requests (smart keypoints "
                       "in params.context.result); it makes no predictions without clicks")
    if not isinstance(context["result"], list):
      raise BadRequest("params.context.result must be a list of keypoint results")
    return {"results": [self._interactive(task, config, context["result"])]}

  # --- one click -----------------------------------------------------------------------------
  def _interactive(self, task: dict, config: LabelConfig, results: list) -> dict:
    label, points = _keypoints(results, config)
    if label not in config.brush_labels:
      raise BadRequest(f"the keypoints' label {label!r} is not a label of <BrushLabels name="
                       f"\"{config.brush_name}\"> ({', '.join(map(repr, config.brush_labels))})", 422)
    task_id = task.get("id")
    if task_id is None:
      raise BadRequest("the task has no 'id'")
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    value = data.get(config.image_key)
    entry = self._entry(task_id, create=value is not None)
    if entry is None:
      raise BadRequest(f"task {task_id} was never seen by this backend and the request holds no "
                       f"image for it (data.{config.image_key})", 404)
    with entry.lock:
      self._ensure_image(entry, value)
      h, w = entry.predictor.transform.orig_hw
      clicks = [_to_pixel(p, h, w, i) for i, p in enumerate(points)]
      prefix = entry.clicks and clicks[:len(entry.clicks)] == entry.clicks and len(clicks) > len(entry.clicks)
      prev = entry.probs if prefix else None
      try:
        probs = entry.predictor.predict(clicks, prev_mask=prev)
      except ValueError as e:  # ClickError: too many clicks for the model's slots
        raise BadRequest(str(e), 422) from None
      entry.clicks, entry.probs = clicks, probs
      with self._lock:
        self.counters["decodes"] += 1
      mask = probs > self.threshold
      score = float(probs[mask].mean()) if mask.any() else 0.0
    region = {
        "id": uuid.uuid4().hex[:10], "from_name": config.brush_name, "to_name": config.image_name,
        "type": "brushlabels", "original_width": int(w), "original_height": int(h), "image_rotation": 0,
        "value": {"format": "rle", "rle": rle.encode(mask), "brushlabels": [label]},
        "score": score, "readonly": False,
    }
    return {"result": [region], "score": score, "model_version": self.model_version}

  def _entry(self, task_id, create: bool) -> _Entry | None:
    key = str(task_id)
    with self._lock:
      entry = self._entries.get(key)
      if entry is not None:
        self._entries.move_to_end(key)
      elif create:
        entry = self._entries[key] = _Entry(key)
      return entry

  def _ensure_image(self, entry: _Entry, value) -> None:
    """Encode the task's image unless the entry holds it already (under entry.lock)."""
    if entry.predictor is not None and (value is None or value == entry.image_key):
      return
    try:
      image = self.images.fetch(value)
    except ImageFetchError as e:
      self._drop_if_empty(entry)
      raise BadRequest(str(e), e.status) from None
    # A task's requests take turns under its lock, on any of the server's threads.
    predictor = Predictor(self.predictor.model, self.predictor.params, self.predictor.config,
                          check_thread=False)
    predictor.source = self.predictor.source
    start = time.perf_counter()
    try:
      predictor.set_image(image)
    except ValueError as e:
      self._drop_if_empty(entry)
      raise BadRequest(f"image {value[:100]}: {e}", 422) from None
    seconds = time.perf_counter() - start
    entry.predictor, entry.image_key = predictor, value
    entry.clicks, entry.probs = [], None
    entry.nbytes = sum(int(np.asarray(x).nbytes) for x in jax.tree.leaves(predictor.image_state))
    with self._lock:
      self.counters["encodes"] += 1
      self.counters["encode_ms"] = int(seconds * 1000)
      self._evict(keep=entry.key)

  def _drop_if_empty(self, entry: _Entry) -> None:
    with self._lock:
      if entry.predictor is None and self._entries.get(entry.key) is entry:
        del self._entries[entry.key]

  def _evict(self, keep: str) -> None:
    """Drop least recently used entries over the bounds (under self._lock); `keep` stays."""
    def over():
      return (len(self._entries) > self.cache_entries
              or sum(e.nbytes for e in self._entries.values()) > self.cache_bytes)
    for key in list(self._entries):
      if not over():
        break
      if key != keep:
        del self._entries[key]
        self.counters["evictions"] += 1


def _object(value, what: str) -> dict:
  if not isinstance(value, dict):
    raise BadRequest(f"{what} must be a JSON object, got {type(value).__name__}")
  return value


def _keypoints(results: list, config: LabelConfig):
  """The context's keypoints -> (their label, [(x %, y %, positive), ...]); boxes are refused."""
  label, points = None, []
  for i, result in enumerate(results):
    if not isinstance(result, dict):
      raise BadRequest(f"context result {i} is not an object")
    kind = result.get("type")
    if kind == "rectanglelabels" or kind == "rectangle":
      raise BadRequest("a box prompt (rectanglelabels) is not supported by this model: OIS takes "
                       "clicks; use the smart keypoints", 422)
    if kind != "keypointlabels":
      raise BadRequest(f"context result {i} is of type {kind!r}; this backend takes keypointlabels", 422)
    value = result.get("value")
    if not isinstance(value, dict):
      raise BadRequest(f"keypoint {i} has no 'value' object")
    labels = value.get("keypointlabels") or []
    if not isinstance(labels, list) or not labels:
      raise BadRequest(f"keypoint {i} has no label (value.keypointlabels)")
    if label is None:
      label = labels[0]
    elif labels[0] != label:
      raise BadRequest(f"keypoint {i} has label {labels[0]!r}, the region's first keypoint {label!r}", 422)
    x, y = value.get("x"), value.get("y")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in (x, y)):
      raise BadRequest(f"keypoint {i} has x={x!r}, y={y!r}; expected numbers (percent of the image)")
    if not (0 <= x <= 100 and 0 <= y <= 100):
      raise BadRequest(f"keypoint {i} at x={x:g} %, y={y:g} % is outside the image (0-100 %)", 422)
    positive = result.get("is_positive", True)
    if not isinstance(positive, bool):
      raise BadRequest(f"keypoint {i} has is_positive={positive!r}; expected true or false")
    points.append((float(x), float(y), positive))
  return label, points


def _to_pixel(point, h: int, w: int, index: int) -> tuple[float, float, bool]:
  """(x %, y %, positive) -> the click (y, x, positive) in pixel-centre coordinates."""
  x, y, positive = point
  return (float(np.clip(y / 100.0 * h - 0.5, 0, h - 1)), float(np.clip(x / 100.0 * w - 0.5, 0, w - 1)),
          positive)
