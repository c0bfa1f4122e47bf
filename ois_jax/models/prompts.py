"""Click prompts: the fixed-slot `Clicks` pytree, sparse slot embeddings and dense click maps.

Clicks live in N = 48 fixed slots (24 positive, then 24 negative), so adding a click never
changes a shape and never recompiles. Coordinates are (y, x) in MODEL-INPUT pixels.

- Sparse (paper Sec. 4.1, after SAM): slot embedding = random-Fourier positional encoding of
  the coordinate + a learned type embedding (positive / negative); empty slots get a learned
  "non-point" embedding instead. The Gaussian matrix of the Fourier features is fixed: it
  is stored as a parameter so checkpoints are self-contained, but is used through
  stop_gradient and masked out of the optimizer (`ois.trainable_mask`).
- Dense (Sec. 3.4): 2 channels of click disks (positive, negative), radius
  `disk_radius * input_size / 1024` px (SegNext uses 5 px at 1024; OUR CHOICE: at least 1 px),
  patchified by one stride-14 convolution to C channels.
"""

from typing import Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.errors import ClickError
from ois_jax.geometry import PATCH_SIZE

NUM_POSITIVE = 24
NUM_NEGATIVE = 24


@flax.struct.dataclass
class Clicks:
  """Fixed-slot clicks. coords (B, N, 2) float32 (y, x) model pixels; valid (B, N) bool.

  Slots [0, num_positive) are positive, [num_positive, N) negative.
  """
  coords: jnp.ndarray  # (B, N, 2)
  valid: jnp.ndarray   # (B, N)

  @classmethod
  def empty(cls, batch: int, num_positive: int = NUM_POSITIVE,
            num_negative: int = NUM_NEGATIVE) -> "Clicks":
    n = num_positive + num_negative
    return cls(np.zeros((batch, n, 2), np.float32), np.zeros((batch, n), bool))

  @classmethod
  def from_lists(cls, clicks: Sequence[Sequence[tuple[float, float, bool]]],
                 num_positive: int = NUM_POSITIVE, num_negative: int = NUM_NEGATIVE) -> "Clicks":
    """clicks[b] = [(y, x, is_positive), ...] in model coordinates, in click order.

    Positive clicks fill slots 0.. in order, negative clicks slots num_positive.. in order.
    Raises ClickError when an image has more clicks of one sign than slots.
    """
    out = cls.empty(len(clicks), num_positive, num_negative)
    coords, valid = np.array(out.coords), np.array(out.valid)
    for b, image_clicks in enumerate(clicks):
      n_pos = n_neg = 0
      for y, x, is_positive in image_clicks:
        if is_positive:
          if n_pos >= num_positive:
            raise ClickError(f"image {b}: more than {num_positive} positive clicks")
          slot, n_pos = n_pos, n_pos + 1
        else:
          if n_neg >= num_negative:
            raise ClickError(f"image {b}: more than {num_negative} negative clicks")
          slot, n_neg = num_positive + n_neg, n_neg + 1
        coords[b, slot] = (y, x)
        valid[b, slot] = True
    return cls(coords, valid)

  @property
  def num_slots(self) -> int:
    return self.valid.shape[-1]

  def add(self, yx: jnp.ndarray, is_positive: jnp.ndarray, active: jnp.ndarray | None = None,
          num_positive: int = NUM_POSITIVE) -> "Clicks":
    """Jittable: put one click per image into the first free slot of its sign.

    yx (B, 2) model coords; is_positive (B,) bool; active (B,) bool (False: leave unchanged).
    A click whose sign has no free slot is dropped (callers check the count beforehand).
    """
    n = self.valid.shape[-1]
    slot_is_pos = jnp.arange(n) < num_positive  # (N,)
    same_sign = jnp.where(is_positive[:, None], slot_is_pos[None], ~slot_is_pos[None])  # (B, N)
    free = same_sign & ~self.valid
    first = jnp.argmax(free, axis=-1)  # (B,)
    ok = jnp.any(free, axis=-1)
    if active is not None:
      ok = ok & active
    hit = (jnp.arange(n)[None] == first[:, None]) & ok[:, None]  # (B, N)
    coords = jnp.where(hit[..., None], jnp.asarray(yx, jnp.float32)[:, None], self.coords)
    return Clicks(coords, self.valid | hit)


def click_capacity(num_positive: int, num_negative: int) -> int:
  """The most clicks a click loop may place with every one reaching a slot, whatever their signs:
  the first click is positive, any later one may be either."""
  return min(int(num_positive), int(num_negative) + 1)


def fourier_features(coords: jnp.ndarray, gaussian: jnp.ndarray, size: int) -> jnp.ndarray:
  """SAM's random-Fourier positional encoding. coords (..., 2) pixel (y, x) -> (..., C).

  Pixel centres are normalised to [0, 1] ((c + 0.5) / size), then to [-1, 1].
  gaussian: (2, C // 2).
  """
  unit = (coords.astype(jnp.float32) + 0.5) / size * 2.0 - 1.0
  proj = 2.0 * np.pi * unit @ gaussian.astype(jnp.float32)
  return jnp.concatenate([jnp.sin(proj), jnp.cos(proj)], axis=-1)


def grid_coords(grid: int, cell: float = PATCH_SIZE) -> jnp.ndarray:
  """(grid*grid, 2) centre coordinates in model pixels of a grid of `cell`-pixel cells (default:
  the tokens), row-major."""
  centres = (np.arange(grid, dtype=np.float32) + 0.5) * cell - 0.5
  yy, xx = np.meshgrid(centres, centres, indexing="ij")
  return jnp.asarray(np.stack([yy.ravel(), xx.ravel()], axis=-1))


class PositionEncoding(nn.Module):
  """Fixed random-Fourier encoding with its Gaussian matrix stored as `gaussian` (2, C/2)."""
  dim: int
  input_size: int
  scale: float = 1.0

  @nn.compact
  def __call__(self, coords):
    """coords (..., 2) model pixels -> (..., dim) float32."""
    gaussian = self.param("gaussian", nn.initializers.normal(self.scale), (2, self.dim // 2))
    return fourier_features(coords, jax.lax.stop_gradient(gaussian), self.input_size)


class SparsePromptEncoder(nn.Module):
  """Clicks -> (B, N, C) slot embeddings: PE + type embedding, or "non-point" when empty."""
  dim: int
  input_size: int
  num_positive: int = NUM_POSITIVE

  @nn.compact
  def __call__(self, clicks: Clicks, point_pe: jnp.ndarray) -> jnp.ndarray:
    """point_pe: (B, N, C) positional encoding of clicks.coords."""
    init = nn.initializers.normal(1.0)
    pos_embed = self.param("positive_embed", init, (self.dim,))
    neg_embed = self.param("negative_embed", init, (self.dim,))
    not_a_point = self.param("not_a_point_embed", init, (self.dim,))
    n = clicks.valid.shape[-1]
    slot_is_pos = (jnp.arange(n) < self.num_positive)[:, None]  # (N, 1)
    type_embed = jnp.where(slot_is_pos, pos_embed, neg_embed)  # (N, C)
    point = point_pe + type_embed  # (B, N, C)
    return jnp.where(clicks.valid[..., None], point, not_a_point)


def disk_maps(clicks: Clicks, size: int, radius: float, num_positive: int = NUM_POSITIVE):
  """(B, size, size, 2) float32 disk maps: channel 0 positive clicks, channel 1 negative."""
  pix = jnp.arange(size, dtype=jnp.float32)
  dy2 = (pix[None, None, :] - clicks.coords[..., 0:1]) ** 2  # (B, N, S)
  dx2 = (pix[None, None, :] - clicks.coords[..., 1:2]) ** 2  # (B, N, S)
  inside = (dy2[..., :, None] + dx2[..., None, :]) <= radius**2  # (B, N, S, S)
  inside = inside & clicks.valid[..., None, None]
  pos = jnp.any(inside[:, :num_positive], axis=1)
  neg = jnp.any(inside[:, num_positive:], axis=1)
  return jnp.stack([pos, neg], axis=-1).astype(jnp.float32)


def disk_radius(cfg_radius: float, input_size: int) -> float:
  """Disk radius in model pixels: `cfg_radius` is given at 1024 input (OUR CHOICE: >= 1 px)."""
  return max(1.0, cfg_radius * input_size / 1024.0)


class DensePromptEncoder(nn.Module):
  """2-channel disk maps -> (B, S/14, S/14, C) by one stride-14 convolution."""
  dim: int
  input_size: int
  radius: float
  num_positive: int = NUM_POSITIVE
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, clicks: Clicks) -> jnp.ndarray:
    maps = disk_maps(clicks, self.input_size, self.radius, self.num_positive)
    return nn.Conv(self.dim, (PATCH_SIZE, PATCH_SIZE), strides=PATCH_SIZE, padding="VALID",
                   dtype=self.dtype, name="proj")(maps.astype(self.dtype))
