"""Reading image and mask files for the dataset builders, with the checks that decide whether a
sample is usable.

Preparation stores the ORIGINAL encoded image bytes (no re-encoding, so pixels are exactly what
the file holds) and decodes them again in the data source's `__getitem__`, with the one image
decoder of ois-jax (`ois_jax.io.decode_image`: the CLI and the Predictor see the same pixels).
"""

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ois_jax import io as ois_io
from ois_jax.errors import ImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg")


class SkipSample(Exception):
  """A sample that preparation leaves out; the message is the reason reported in `skipped`."""


def _open(data, what):
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except UnidentifiedImageError:
    raise SkipSample(f"unreadable {what} (not an image file)") from None
  except (OSError, ValueError, SyntaxError) as e:
    raise SkipSample(f"unreadable {what} ({type(e).__name__}: {e})") from None
  return image


def decode_image_bytes(data, what="image"):
  """Encoded bytes -> uint8 (H, W, 3) (`ois_jax.io.decode_image`). Raises SkipSample for
  undecodable data."""
  try:
    return ois_io.decode_image(data, what)
  except ImageError as e:
    raise SkipSample(f"unreadable {what} ({e})") from None


def read_bytes(path, what):
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as e:
    raise SkipSample(f"cannot read {what} {os.fspath(path)} ({e.strerror})") from None


def read_image_file(path):
  """-> (encoded bytes, (H, W)); validates that the file decodes to an image."""
  data = read_bytes(path, "image")
  image = decode_image_bytes(data, f"image {os.path.basename(path)}")
  return data, image.shape[:2]


def read_mask_file(path, reduce="max"):
  """Mask file -> 2-D int32 array of raw values.

  Palette PNGs give their palette indices (VOC/DAVIS object ids). Colour masks are reduced to one
  channel: 'max' over channels (SimpleClick's DAVIS/HQSeg loaders), or 'blue' (the first channel of
  OpenCV's BGR order, which the GrabCut/Berkeley loaders use).
  """
  return read_mask_from_bytes(read_bytes(path, "mask"), f"mask {os.path.basename(path)}", reduce)


def read_mask_from_bytes(data, what="mask", reduce="max"):
  """Encoded mask bytes -> 2-D int32 array (see `read_mask_file`). EXIF orientation is applied, as
  it is to the images, so a mask stays aligned with its image."""
  image = ImageOps.exif_transpose(_open(data, what))
  if image.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LA"):
    a = np.asarray(image.convert("RGB"), dtype=np.int32)
    return a[..., 2] if reduce == "blue" else a.max(axis=2)
  if image.mode == "1":
    return np.asarray(image, dtype=np.int32)
  a = np.asarray(image)
  if a.ndim == 3:
    a = a.max(axis=2)
  return a.astype(np.int32)


def check_same_size(image_hw, mask_hw, what="mask"):
  if tuple(image_hw) != tuple(mask_hw):
    raise SkipSample(f"size mismatch: image {image_hw[0]}x{image_hw[1]} vs {what} {mask_hw[0]}x{mask_hw[1]}")


def encode_eval_mask(gt):
  """int (H, W) with 1/0/-1 -> uint8 with 1/0/255 (reads back as int8 -1 via `.view(np.int8)`)."""
  if not np.any(gt == 1):
    raise SkipSample("empty ground-truth mask (no object pixel)")
  return np.where(gt < 0, 255, gt).astype(np.uint8)


def find_by_stem(folder, extensions):
  """{stem: path} for files of `folder` with one of `extensions` (case-insensitive)."""
  found = {}
  if not os.path.isdir(folder):
    return found
  for entry in sorted(os.listdir(folder)):
    stem, ext = os.path.splitext(entry)
    if ext.lower() in extensions and stem not in found:
      found[stem] = os.path.join(folder, entry)
  return found
