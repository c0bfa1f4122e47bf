"""Segment an image from clicks with an ONNX export of OIS: NumPy, Pillow and onnxruntime only.

    ois-jax export --checkpoint CKPT --format onnx --out export_dir
    python examples/onnx_segment.py export_dir photo.jpg --click 120,200,+ --click 40,30,- --out mask.png

Clicks are y,x,+ (positive) or y,x,- (negative) in pixels of the image, as for `ois-jax segment`,
and the mask is the same: an 8-bit PNG, 255 where the probability exceeds the manifest's
threshold. Neither JAX nor ois-jax is imported: this file is what an annotation tool's backend
embeds. `OnnxSegmenter` mirrors `ois_jax.Predictor` (set_image once, predict per click round,
prev_mask from the previous round); every pre- and post-processing step follows the export's
manifest.json:

  resize    longest side to the input size, OpenCV's INTER_LINEAR on uint8 reproduced bit for bit
            (`resize_linear_uint8`), then (pixel / 255 - mean) / std, zero-padded bottom/right
  clicks    (y + 0.5) * scale - 0.5 in model pixels; positive clicks in the first slots, negative
            clicks after them
  logits    cropped to the resized image, bilinear (half-pixel) back to the image size, sigmoid
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

FORMAT_NAME = "ois-jax-export"
# What this file reads of manifest.json, section by section (checked before any session opens).
MANIFEST_KEYS = {"artifacts": ("encoder", "decoder"), "preprocessing": ("input_size", "mean", "std"),
                 "clicks": ("num_positive", "num_negative"), "postprocessing": ("threshold",)}
CLICK_SIGNS = {"+": True, "pos": True, "1": True, "-": False, "neg": False, "0": False}


class SegmentError(Exception):
  """A problem with the export, the image or the clicks (printed as one line)."""


# --- the export ----------------------------------------------------------------------------------
def load_manifest(export_dir: str) -> dict:
  path = os.path.join(export_dir, "manifest.json")
  if not os.path.isfile(path):
    raise SegmentError(f"{export_dir}: not an ois-jax export (no manifest.json)")
  try:
    with open(path) as f:
      manifest = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise SegmentError(f"{path}: not readable JSON ({e})") from None
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME or manifest.get("backend") != "onnx":
    raise SegmentError(f"{path}: not the manifest of an ONNX export of ois-jax")
  if manifest.get("kind") != "ois":
    raise SegmentError(f"{path}: exports a {manifest.get('kind')!r} model, not OIS")
  for section, keys in MANIFEST_KEYS.items():
    values = manifest.get(section)
    missing = [k for k in keys if not isinstance(values, dict) or k not in values]
    if missing:
      raise SegmentError(f"{path}: the manifest lacks {section}.{', '.join(missing)} (an edited or "
                         "damaged export; export it again)")
  for name in ("encoder", "decoder"):
    entry = manifest["artifacts"][name]
    if not isinstance(entry, dict) or not all(k in entry for k in ("file", "sha256", "inputs", "outputs")):
      raise SegmentError(f"{path}: artifacts.{name} lacks file, sha256, inputs or outputs")
  if manifest["preprocessing"].get("external_depth"):
    raise SegmentError(f"{path}: this model takes an external depth map, which this example does not read")
  return manifest


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def open_session(export_dir: str, name: str, entry: dict) -> ort.InferenceSession:
  """An onnxruntime session of one artifact, after checking it is the one the manifest describes."""
  path = os.path.join(export_dir, entry["file"])
  if not os.path.isfile(path):
    raise SegmentError(f"{path}: missing (the export is incomplete)")
  if _sha256(path) != entry["sha256"]:
    raise SegmentError(f"{path}: does not match the manifest (sha256 differs); the {name} was replaced "
                       "or the folder mixes two exports")
  try:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
  except Exception as e:  # noqa: BLE001 - onnxruntime raises its own classes for a bad graph
    raise SegmentError(f"{path}: onnxruntime cannot load it ({first_line(e)})") from None
  for kind, expected, actual in (("inputs", entry["inputs"], session.get_inputs()),
                                 ("outputs", entry["outputs"], session.get_outputs())):
    have = [(v.name, [d if isinstance(d, int) else str(d) for d in v.shape]) for v in actual]
    want = [(t["name"], t["shape"]) for t in expected]
    if have != want:
      raise SegmentError(f"{path}: its {kind} {have} are not the manifest's {want}")
  return session


# --- pre- and post-processing -----------------------------------------------------------------------
def _linear_taps(in_size: int, out_size: int, clamp_fraction: bool):
  """OpenCV's INTER_LINEAR source indices and 11-bit weights along one axis."""
  src = ((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5).astype(np.float32)
  i0 = np.floor(src).astype(np.int64)
  frac = (src - i0).astype(np.float32)
  if clamp_fraction:  # OpenCV clamps the horizontal taps at the edges; vertically it clamps rows
    frac = np.where(i0 < 0, 0, frac)
    i0 = np.where(i0 < 0, 0, i0)
    past = i0 >= in_size - 1
    frac, i0 = np.where(past, 0, frac), np.where(past, in_size - 1, i0)
  w1 = np.round(frac * 2048).astype(np.int64)
  w0 = np.round((np.float32(1) - frac) * 2048).astype(np.int64)
  return np.clip(i0, 0, in_size - 1), np.clip(i0 + 1, 0, in_size - 1), w0, w1


def resize_linear_uint8(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
  """cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_LINEAR) for (H, W, C) uint8, exactly."""
  h, w = image.shape[:2]
  x0, x1, a0, a1 = _linear_taps(w, out_w, True)
  y0, y1, b0, b1 = _linear_taps(h, out_h, False)
  pixels = image.astype(np.int64)
  rows = pixels[:, x0] * a0[None, :, None] + pixels[:, x1] * a1[None, :, None]  # (H, out_w, C)
  # OpenCV's vectorised vertical pass: drop 4 bits, multiply-high by the weights, round by 2 bits.
  out = (((rows[y0] >> 4) * b0[:, None, None]) >> 16) + (((rows[y1] >> 4) * b1[:, None, None]) >> 16)
  return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """(out_size, in_size) float32 matrix of bilinear interpolation with half-pixel centres."""
  src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5, 0.0)
  i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  weights = np.zeros((out_size, in_size), np.float64)
  rows = np.arange(out_size)
  np.add.at(weights, (rows, i0), 1.0 - (src - i0))
  np.add.at(weights, (rows, i1), src - i0)
  return weights.astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
  return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


class OnnxSegmenter:
  """set_image once, predict per round of clicks: (H, W) float32 probabilities."""

  def __init__(self, export_dir: str):
    self.manifest = load_manifest(export_dir)
    artifacts = self.manifest["artifacts"]
    self.encoder = open_session(export_dir, "encoder", artifacts["encoder"])
    self.decoder = open_session(export_dir, "decoder", artifacts["decoder"])
    self.state_names = [t["name"] for t in artifacts["encoder"]["outputs"]]
    pre = self.manifest["preprocessing"]
    self.size = int(pre["input_size"])
    self.mean, self.std = np.array(pre["mean"], np.float32), np.array(pre["std"], np.float32)
    self.num_positive = int(self.manifest["clicks"]["num_positive"])
    self.num_negative = int(self.manifest["clicks"]["num_negative"])
    self.threshold = float(self.manifest["postprocessing"]["threshold"])
    self.state = None
    self._check_graph_agrees(export_dir)

  def _check_graph_agrees(self, export_dir: str) -> None:
    """SegmentError when the manifest's sizes contradict the graphs' own input shapes."""
    image = {v.name: v.shape for v in self.encoder.get_inputs()}.get("image")
    slots = {v.name: v.shape for v in self.decoder.get_inputs()}.get("click_coords")
    path = os.path.join(export_dir, "manifest.json")
    if image is None or list(image[1:]) != [self.size, self.size, 3]:
      raise SegmentError(f"{path}: preprocessing.input_size {self.size} is not the encoder's input "
                         f"{image}; the manifest was edited or belongs to another export")
    if slots is None or slots[1] != self.num_positive + self.num_negative:
      raise SegmentError(f"{path}: clicks {self.num_positive} + {self.num_negative} are not the "
                         f"decoder's {slots} click slots; the manifest was edited or belongs to another export")

  def set_image(self, image: np.ndarray) -> None:
    """image (H, W, 3) uint8 RGB."""
    h, w = image.shape[:2]
    self.scale = self.size / max(h, w)
    self.hw = (h, w)
    self.resized = (min(self.size, max(1, int(round(h * self.scale)))),
                    min(self.size, max(1, int(round(w * self.scale)))))
    rh, rw = self.resized
    resized = resize_linear_uint8(image, rh, rw) if (rh, rw) != (h, w) else image
    x = np.zeros((1, self.size, self.size, 3), np.float32)
    x[0, :rh, :rw] = (resized.astype(np.float32) / 255.0 - self.mean) / self.std
    self.state = self.encoder.run(self.state_names, {"image": x})
    # Original <-> model-space maps: crop/pad around bilinear resizes, as matrices.
    self.back_h = np.zeros((h, self.size), np.float32)
    self.back_w = np.zeros((w, self.size), np.float32)
    self.back_h[:, :rh], self.back_w[:, :rw] = bilinear_matrix(rh, h), bilinear_matrix(rw, w)
    self.to_h = np.zeros((self.size, h), np.float32)
    self.to_w = np.zeros((self.size, w), np.float32)
    self.to_h[:rh], self.to_w[:rw] = bilinear_matrix(h, rh), bilinear_matrix(w, rw)

  def clicks_to_slots(self, clicks) -> tuple[np.ndarray, np.ndarray]:
    """[(y, x, is_positive), ...] in image pixels -> coords (1, N, 2) float32, valid (1, N) bool."""
    h, w = self.hw
    n_pos = sum(1 for _, _, p in clicks if p)
    if n_pos > self.num_positive:
      raise SegmentError(f"{n_pos} positive clicks; the model has {self.num_positive} positive slots")
    if len(clicks) - n_pos > self.num_negative:
      raise SegmentError(f"{len(clicks) - n_pos} negative clicks; the model has "
                         f"{self.num_negative} negative slots")
    coords = np.zeros((1, self.num_positive + self.num_negative, 2), np.float32)
    valid = np.zeros((1, self.num_positive + self.num_negative), bool)
    next_slot = {True: 0, False: self.num_positive}
    for i, (y, x, positive) in enumerate(clicks):
      if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
        raise SegmentError(f"click {i} at (y={y:g}, x={x:g}) is outside the {h}x{w} image")
      slot = next_slot[positive]
      next_slot[positive] += 1
      coords[0, slot] = (np.array([y, x], np.float32) + 0.5) * np.float32(self.scale) - 0.5
      valid[0, slot] = True
    return coords, valid

  def predict(self, clicks, prev_prob: np.ndarray | None = None) -> np.ndarray:
    if self.state is None:
      raise SegmentError("predict() called before set_image()")
    # (the shapes of every input were checked against the graph when the sessions opened)
    if not clicks:
      raise SegmentError("no clicks given: give at least one --click y,x,+")
    coords, valid = self.clicks_to_slots(clicks)
    if prev_prob is None:
      prev, has_prev = np.zeros((1, self.size, self.size), np.float32), False
    else:
      prev, has_prev = (self.to_h @ np.asarray(prev_prob, np.float32) @ self.to_w.T)[None], True
    feeds = dict(zip(self.state_names, self.state))
    feeds.update(click_coords=coords, click_valid=valid, prev_mask=prev,
                 has_prev=np.array([has_prev]))
    logits = self.decoder.run(["logits"], feeds)[0][0]  # (S, S)
    return sigmoid(self.back_h @ logits @ self.back_w.T)


# --- command line ------------------------------------------------------------------------------------
def parse_click(text: str) -> tuple[float, float, bool]:
  parts = [p.strip() for p in text.split(",")]
  if len(parts) != 3 or parts[2] not in CLICK_SIGNS:
    raise SegmentError(f"--click {text!r}: expected y,x,+ or y,x,-")
  try:
    return float(parts[0]), float(parts[1]), CLICK_SIGNS[parts[2]]
  except ValueError:
    raise SegmentError(f"--click {text!r}: y and x must be numbers") from None


def load_image(path: str) -> np.ndarray:
  """(H, W, 3) uint8 RGB, EXIF orientation applied, as ois_jax.io.load_image: 16-bit grayscale
  by value / 257 (not clipped at 255), float images as [0, 1] or [0, 255]."""
  try:
    with Image.open(path) as img:
      img.load()
      img = ImageOps.exif_transpose(img)
      if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        gray = np.clip(np.round(np.asarray(img).astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
      if img.mode == "F":
        values = np.asarray(img).astype(np.float64)
        values = values * 255.0 if np.nanmax(values, initial=0.0) <= 1.0 else values
        gray = np.clip(np.round(np.nan_to_num(values)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
      return np.array(img.convert("RGB"), dtype=np.uint8)
  except Image.DecompressionBombError as e:  # a header claiming billions of pixels
    raise SegmentError(f"{path}: refused, too many pixels ({e})") from None
  except (OSError, SyntaxError, ValueError) as e:
    raise SegmentError(f"{path}: cannot read image ({e})") from None


def first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


# --- writing (what ois_jax.outputs does, without importing ois-jax) --------------------------
def check_output(path: str, extensions, what: str, inputs) -> None:
  """SegmentError, before any work, for an output that is a folder, of an unknown type, one of
  the inputs, or in a place where no file can be made."""
  if os.path.isdir(path):
    raise SegmentError(f"{what} {path}: is a folder; give a file name")
  if not path.lower().endswith(tuple(extensions)):
    raise SegmentError(f"{what} {path}: unknown file type; use {', '.join(extensions)}")
  for source in inputs:
    if os.path.exists(path) and os.path.exists(source) and os.path.samefile(path, source):
      raise SegmentError(f"{what} {path}: is the input {source}; give another file name")
  ancestor = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(ancestor):
    ancestor = os.path.dirname(ancestor)
  if not os.path.isdir(ancestor) or not os.access(ancestor, os.W_OK):
    raise SegmentError(f"{what} {path}: cannot create a file under {ancestor}")


def write_output(path: str, write) -> None:
  """write(file object) into a temporary file beside `path`, renamed onto it when complete (the
  umask's mode); a failure (full disk, read-only) is a SegmentError and leaves no partial file."""
  import tempfile
  path = os.path.abspath(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path))
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)
  except OSError as e:
    raise SegmentError(f"{path}: cannot write ({e.strerror or e}); nothing was written") from None
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("export_dir", help="folder written by `ois-jax export --format onnx`")
  parser.add_argument("image")
  parser.add_argument("--click", action="append", default=[], help="y,x,+ or y,x,- (repeatable)")
  parser.add_argument("--out", required=True, help="output PNG (0 / 255)")
  parser.add_argument("--prob-out", help="also save the probabilities as .npy")
  parser.add_argument("--threshold", type=float, help="default: the manifest's")
  args = parser.parse_args(argv)
  try:
    check_output(args.out, (".png",), "--out", [args.export_dir, args.image])
    if args.prob_out:
      check_output(args.prob_out, (".npy",), "--prob-out", [args.export_dir, args.image, args.out])
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:  # NaN fails this too
      raise SegmentError(f"--threshold must be in [0, 1], got {args.threshold}")
    clicks = [parse_click(c) for c in args.click]
    if not clicks:
      raise SegmentError("give at least one --click y,x,+")
    segmenter = OnnxSegmenter(args.export_dir)
    image = load_image(args.image)
    segmenter.set_image(image)
    prob = segmenter.predict(clicks)
  except SegmentError as e:
    print(f"onnx_segment.py: error: {e}", file=sys.stderr)
    return 1
  threshold = segmenter.threshold if args.threshold is None else args.threshold
  mask = (prob > threshold).astype(np.uint8) * 255
  try:
    write_output(args.out, lambda f: Image.fromarray(mask).save(f, format="PNG"))
    if args.prob_out:
      write_output(args.prob_out, lambda f: np.save(f, prob))
  except SegmentError as e:
    print(f"onnx_segment.py: error: {e}", file=sys.stderr)
    return 1
  print(f"{args.out}: {int((mask > 0).sum())} of {mask.size} pixels segmented "
        f"({len(clicks)} clicks, image {image.shape[1]}x{image.shape[0]})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
