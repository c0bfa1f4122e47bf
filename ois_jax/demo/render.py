"""The demo's pictures, as (h, w, 3) uint8 arrays at display size: the mask overlay with the
clicks, the depth map, the order maps and the attention maps.

Every view is drawn at the display size of the clicked image (`display_size`: the longer side
DISPLAY_SIDE px, small images upscaled so that they can be clicked precisely), so a click at
display pixel (x, y) is image pixel ((x + 0.5) / s - 0.5, (y + 0.5) / s - 0.5) (`to_image_coords`).
"""

import cv2
import numpy as np

from ois_jax import geometry, transforms
from ois_jax.io import depth_to_colors

DISPLAY_SIDE = 480
TILE_SIDE = 240  # order and attention maps, several side by side
POSITIVE_COLOR = (40, 200, 60)
NEGATIVE_COLOR = (230, 40, 40)
MASK_COLOR = np.array((30, 144, 255), np.float32)


def display_size(hw: tuple[int, int], side: int = DISPLAY_SIDE) -> tuple[int, int]:
  """(h, w) of an (H, W) image shown with its longer side `side` px."""
  h, w = hw
  scale = side / max(h, w)
  return max(1, round(h * scale)), max(1, round(w * scale))


def to_image_coords(x: float, y: float, image_hw: tuple[int, int], shown_hw: tuple[int, int]):
  """A click at pixel (x, y) of the shown picture -> (y, x) in image pixels, inside the image."""
  (h, w), (sh, sw) = image_hw, shown_hw
  iy, ix = geometry.to_model_coords(np.array([y, x], np.float64), np.array([h / sh, w / sw]))
  return float(np.clip(iy, 0, h - 1)), float(np.clip(ix, 0, w - 1))


def _resize(values: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
  h, w = hw
  if nearest:
    return cv2.resize(values, (w, h), interpolation=cv2.INTER_NEAREST)
  return transforms.resize_image(values, hw)


def _scaled_clicks(clicks, image_hw, shown_hw):
  (h, w), (sh, sw) = image_hw, shown_hw
  scale = np.array([sh / h, sw / w])
  return [(*geometry.to_model_coords(np.array([cy, cx], np.float64), scale), p) for cy, cx, p in clicks]


def draw_clicks(picture: np.ndarray, clicks, image_hw, numbered: bool = True) -> np.ndarray:
  """Clicks (y, x, positive) in image pixels as filled dots (green +, red -) with a white rim."""
  out = picture.copy()
  radius = max(4, round(min(out.shape[:2]) / 60))
  for i, (y, x, positive) in enumerate(_scaled_clicks(clicks, image_hw, out.shape[:2])):
    centre = (int(round(x)), int(round(y)))
    cv2.circle(out, centre, radius + 2, (255, 255, 255), -1, cv2.LINE_AA)
    cv2.circle(out, centre, radius, POSITIVE_COLOR if positive else NEGATIVE_COLOR, -1, cv2.LINE_AA)
    if numbered:
      _text(out, str(i + 1), (centre[0] + radius + 3, centre[1] - radius - 2), 0.45)
  return out


def overlay(image: np.ndarray, mask: np.ndarray | None, clicks, shown_hw) -> np.ndarray:
  """The image at display size, the mask tinted with its outline, the clicks on top."""
  picture = _resize(image, shown_hw).astype(np.float32)
  if mask is not None:
    shown = _resize(mask.astype(np.uint8), shown_hw, nearest=True).astype(bool)
    picture[shown] = 0.45 * picture[shown] + 0.55 * MASK_COLOR
    contours, _ = cv2.findContours(shown.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    picture = picture.astype(np.uint8)
    cv2.drawContours(picture, contours, -1, (255, 255, 255), 2, cv2.LINE_AA)
  return draw_clicks(picture.astype(np.uint8), clicks, image.shape[:2])


def depth_view(depth: np.ndarray, shown_hw) -> np.ndarray:
  """(h', w') depth in [0, 1] -> colour map at display size (nearer = warmer)."""
  return _resize(depth_to_colors(depth), shown_hw)


def _tile_hw(image_hw) -> tuple[int, int]:
  return display_size(image_hw, TILE_SIDE)


def _text(picture, text, origin, scale=0.5):
  """Black-outlined white text (readable on any map)."""
  cv2.putText(picture, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
  cv2.putText(picture, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _labelled(picture: np.ndarray, label: str) -> np.ndarray:
  """A caption band below the picture (the page's labels cover the top-left corner)."""
  band = np.full((22, picture.shape[1], 3), 250, np.uint8)
  cv2.putText(band, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
  return np.concatenate([picture, band], axis=0)


def tiles(pictures: list[np.ndarray], columns: int = 2, gap: int = 4) -> np.ndarray:
  """Equal-sized pictures in a grid, row by row."""
  h, w = pictures[0].shape[:2]
  rows = -(-len(pictures) // columns)
  cols = min(columns, len(pictures))
  out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 255, np.uint8)
  for i, picture in enumerate(pictures):
    r, c = divmod(i, columns)
    out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = picture
  return out


def placeholder(text: str, image_hw=None) -> np.ndarray:
  """A grey tile with a one-line message (a view with nothing to show yet)."""
  h, w = _tile_hw(image_hw) if image_hw else (TILE_SIDE * 3 // 4, TILE_SIDE)
  out = np.full((h, w, 3), 235, np.uint8)
  cv2.putText(out, text, (8, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (90, 90, 90), 1, cv2.LINE_AA)
  return out


def order_maps_view(depth: np.ndarray, image_hw, clicks, positive_value, negative_values,
                    max_negative: int = 7) -> np.ndarray:
  """The order maps of the current clicks (paper Eq. 1-2, Figure 3): |R - mean R(positive)|
  shared by the positive clicks, and |R - R(n_j)| for each negative click; values in [0, 1]
  drawn in grey (darker = nearer in depth to the clicked object), clicks marked.

  depth (h', w') in [0, 1] (the model's input resolution); the model pools these maps to its
  token grid (order.order_maps_tokens). At most `max_negative` negative maps are drawn."""
  hw = _tile_hw(image_hw)
  depth = _resize(depth.astype(np.float32), hw)
  positives = [c for c in clicks if c[2]]
  negatives = [c for c in clicks if not c[2]]
  pictures = []

  def gray(values):
    return np.repeat(np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)

  if positive_value is None:
    pictures.append(_labelled(placeholder("no positive click", image_hw), "positive clicks (shared map)"))
  else:
    picture = draw_clicks(gray(np.abs(depth - positive_value)), positives, image_hw, numbered=False)
    pictures.append(_labelled(picture, f"positive clicks (shared map, {len(positives)})"))
  for j, (value, click) in enumerate(zip(negative_values[:max_negative], negatives)):
    picture = draw_clicks(gray(np.abs(depth - value)), [click], image_hw, numbered=False)
    pictures.append(_labelled(picture, f"negative click {j + 1}"))
  return tiles(pictures, columns=2)


def _heat(weights_tokens: np.ndarray, grid: int, resized_hw, size: int, image_tile: np.ndarray):
  """(T,) token weights -> a heat map over the image tile (normalised to the map's maximum)."""
  grid_map = weights_tokens.reshape(grid, grid)
  patch = size // grid
  full = np.kron(grid_map, np.ones((patch, patch), np.float32))[:resized_hw[0], :resized_hw[1]]
  full = _resize(full.astype(np.float32), image_tile.shape[:2])
  full = full / max(float(full.max()), 1e-12)
  heat = cv2.applyColorMap(np.round(full * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
  return np.round(0.4 * image_tile + 0.6 * heat).astype(np.uint8)


def attention_view(image: np.ndarray, attention: dict, click_index: int, block: int, clicks,
                   grid: int, size: int, resized_hw) -> np.ndarray:
  """Where click `click_index` attends in block `block`: the order-aware attention without and
  with its order bias (paper Figures 6-7), and the object-aware attention, each averaged over
  heads. attention: kind -> (blocks, clicks, T) (`engine.ClickResult`); size the model input
  side, resized_hw the image's part of it."""
  tile = _resize(image, _tile_hw(image.shape[:2]))
  click = [clicks[click_index]]
  panels = [("order_attn_without_order", "before order-aware (no order bias)"),
            ("order_attn", "after order-aware (with order bias)"),
            ("object_attn", "object-aware attention")]
  pictures = []
  for kind, label in panels:
    if kind not in attention:
      continue
    heat = _heat(np.asarray(attention[kind][block, click_index]), grid, resized_hw, size, tile)
    pictures.append(_labelled(draw_clicks(heat, click, image.shape[:2], numbered=False), label))
  if not pictures:
    return placeholder("this model has no click attention", image.shape[:2])
  return tiles(pictures, columns=3)
