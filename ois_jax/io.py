"""Image decoding (the one decoder of ois-jax: the CLI, the Predictor, the dataset builders and the
training pipeline all read pixels through it) and depth-map writing.

`load_image(path)` and `decode_image(bytes)` always return (H, W, 3) uint8 RGB:
- grayscale (L, 1), palette (P), RGBA/LA (alpha dropped, colours kept as stored, like
  cv2.imread), CMYK, YCbCr -> RGB via Pillow;
- 16-bit grayscale (I;16*, I) -> 8 bits by value / 257 (65535 -> 255), replicated to 3 channels;
  16-bit RGB PNGs are reduced to 8 bits by Pillow itself; float images (F) are taken as [0, 1]
  when their maximum is <= 1, else as [0, 255], and clipped.
- EXIF orientation IS applied (as cv2.imread does, which the DepthAnythingV2 and RITM loaders
  use), so the returned array is the picture as viewers show it. Pass `apply_exif=False` for the
  raw pixel grid (e.g. when masks were drawn on unrotated pixels).
A missing, non-image, corrupt or truncated file raises ImageError naming the file.
"""

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ois_jax.errors import ImageError, path_argument

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_image(path: str, apply_exif: bool = True) -> np.ndarray:
  """Read an image file as (H, W, 3) uint8 RGB."""
  path = path_argument(path, "the image", ImageError)
  if not os.path.isfile(path):
    raise ImageError(f"{path}: no such image file")
  return _decode(path, path, apply_exif)


def decode_image(data: bytes, what: str = "image", apply_exif: bool = True) -> np.ndarray:
  """Encoded image bytes (a file's contents) -> (H, W, 3) uint8 RGB, as `load_image`."""
  return _decode(io.BytesIO(bytes(data)), what, apply_exif)


def _decode(file, what: str, apply_exif: bool) -> np.ndarray:
  try:
    with Image.open(file) as img:
      img.load()  # decode now: truncated data raises here, not later
      if apply_exif:
        img = ImageOps.exif_transpose(img)
      return to_rgb(img)
  except UnidentifiedImageError:
    raise ImageError(f"{what}: not an image file (Pillow cannot identify it)") from None
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise ImageError(f"{what}: cannot decode image, the file is corrupt or truncated ({e})") from None


def to_rgb(img: Image.Image) -> np.ndarray:
  """Any decoded Pillow image -> (H, W, 3) uint8 RGB (the mode rules above)."""
  if img.mode in _SIXTEEN_BIT_MODES:
    values = np.asarray(img).astype(np.float64)
    gray = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)
  if img.mode == "F":
    values = np.asarray(img).astype(np.float64)
    if np.nanmax(values, initial=0.0) <= 1.0:
      values = values * 255.0
    gray = np.clip(np.round(np.nan_to_num(values)), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)
  if img.mode != "RGB":
    img = img.convert("RGB")
  return np.array(img, dtype=np.uint8)


def depth_to_colors(depth: np.ndarray, cmap: str = "Spectral_r") -> np.ndarray:
  """(H, W) depth -> (H, W, 3) uint8, min-max normalised, DAv2's run.py colour map."""
  import matplotlib
  depth = np.asarray(depth, np.float64)
  if depth.ndim != 2:
    raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
  finite = np.isfinite(depth)
  lo, hi = (depth[finite].min(), depth[finite].max()) if finite.any() else (0.0, 0.0)
  scaled = np.zeros_like(depth) if hi <= lo else (np.where(finite, depth, lo) - lo) / (hi - lo)
  levels = np.round(scaled * 255.0).astype(np.uint8)  # quantise as run.py does
  colors = matplotlib.colormaps[cmap](levels)[..., :3]
  return np.round(colors * 255.0).astype(np.uint8)


def save_depth_png(depth: np.ndarray, path: str, cmap: str = "Spectral_r") -> None:
  """Write a colour-mapped view of a depth map (nearer = warmer with the default map)."""
  from ois_jax import outputs
  outputs.save_image(path, depth_to_colors(depth, cmap), what="depth PNG")
