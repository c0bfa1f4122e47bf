"""Procedural scenes of overlapping look-alike objects, with their true relative inverse depth.

No pretrained depth model exists in this environment: these scenes are the miniature's world, the
one stage 1 learns depth from and the order path of OIS works in. Two worlds:

`world='camera'` (default): what a pinhole camera at height h over a ground plane sees, with the
horizon at row y_h and focal length f (= the image height in pixels). A ground point at row
y > y_h lies at depth z = f h / (y - y_h); its inverse depth (`ground_inverse_depth`) is

    q(y) = (y - y_h) / (f h),          0 above the horizon (the sky).

Each object is a flat, upright shape standing on the ground: its lowest row y_c is where it
touches the ground, so its inverse depth is q(y_c); its image size is f * (physical size) * q(y_c)
with physical sizes drawn from a range, and its texture (and the ground's, drawn on the plane)
has an image period of f * (physical period) * q, so textures shrink toward the horizon. Mild haze
fades far surfaces toward the sky's colour. Objects are painted far to near (painter's algorithm),
so occlusion agrees with depth. One image thus shows depth the way a photograph does: where an
object meets the ground, its size, its texture and its haze.

`world='levels'`: the earlier world, each object at a random depth level that one image shows
only through occlusion; kept for comparison (ois_jax/proj/miniature/README.md).

In both, a scene uses two colour/texture families, shared by the ground and several objects, so
colour alone is ambiguous while depth separates touching look-alikes. Shapes are disks, ellipses,
rotated rectangles and convex polygons.

Records (same format as the real training sources):
  {'image': uint8 (H, W, 3), 'masks': bool (K, H, W) visible part of each object,
   'depth': float32 (H, W) relative inverse depth (larger = closer), 'name': str}
Deterministic per (seed, split, index); 'train' and 'val' use disjoint random streams.

With `depth='occlusion'` the records carry instead the depth of each visible object's rank in the
occlusion order (`occlusion_depth`), on the same ground.
"""

from __future__ import annotations

import cv2
import numpy as np

SPLITS = {"train": 0, "val": 1}
DEPTH_LEVELS = np.linspace(0.3, 1.0, 12)  # object inverse depths: gap 0.064 between levels
TILT = 0.015        # max in-object depth variation (< half a level gap, keeps order strict)
SHAPES = ("disk", "ellipse", "rectangle", "polygon")
DEPTHS = ("true", "occlusion")
WORLDS = ("camera", "levels")
# The camera world (module docstring); sizes and periods in metres, rows as fractions of H.
HORIZON = (0.12, 0.42)         # horizon row y_h / H
CAMERA_HEIGHT = (1.2, 1.8)     # h
OBJECT_SIZE = (0.35, 0.7)      # an object's radius
TEXTURE_PERIOD = (0.08, 0.3)   # a colour family's texture period
CONTACT_START = 0.25           # nearest-to-horizon contact row, as a fraction of H - y_h
CONTACT_GAP = 3                # rows between contact rows: objects at distinct depths
MAX_RADIUS = 0.32              # of min(H, W): the nearest objects stay inside the frame
HAZE = (0.1, 0.3)              # haze at the horizon
HAZE_INVERSE_DEPTH = 0.1       # haze falls by 1/e every this much inverse depth
MIN_AREA = 80       # smallest visible object (pixels) a training record keeps


def _texture(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, base: np.ndarray,
             kind: int, freq: float, angle: float) -> np.ndarray:
  """Pattern of a colour family at pixel grids y, x (h, w): flat, stripes or checker + noise,
  (h, w, 3) float32. Each call takes its own phase, so same-family surfaces show a faint seam."""
  u = x * np.cos(angle) + y * np.sin(angle) + rng.uniform(0, 2 * np.pi / freq)
  v = -x * np.sin(angle) + y * np.cos(angle) + rng.uniform(0, 2 * np.pi / freq)
  if kind == 0:
    pattern = np.zeros(y.shape, np.float32)
  elif kind == 1:
    pattern = np.sign(np.sin(u * freq))
  else:
    pattern = np.sign(np.sin(u * freq) * np.sin(v * freq))
  img = base[None, None, :] + 18.0 * pattern[..., None].astype(np.float32)
  return img + 6.0 * rng.standard_normal(size=y.shape + (3,), dtype=np.float32)


def _shape_mask(rng: np.random.Generator, hw: tuple[int, int], center: np.ndarray,
                radius: float, shape: str) -> np.ndarray:
  """(H, W) bool filled shape."""
  h, w = hw
  canvas = np.zeros((h, w), np.uint8)
  cx, cy = float(center[1]), float(center[0])
  if shape == "disk":
    cv2.circle(canvas, (int(round(cx)), int(round(cy))), int(round(radius)), 1, -1)
  elif shape == "ellipse":
    axes = (int(round(radius)), int(round(radius * rng.uniform(0.4, 0.8))))
    cv2.ellipse(canvas, (int(round(cx)), int(round(cy))), axes, rng.uniform(0, 180), 0, 360, 1, -1)
  elif shape == "rectangle":
    box = cv2.boxPoints(((cx, cy), (2 * radius, 2 * radius * rng.uniform(0.4, 1.0)),
                         rng.uniform(0, 90)))
    cv2.fillPoly(canvas, [np.round(box).astype(np.int32)], 1)
  else:
    n = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.7, 1.0, n)
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], -1)
    cv2.fillPoly(canvas, [cv2.convexHull(np.round(pts).astype(np.int32))], 1)
  return canvas.astype(bool)


def ground_inverse_depth(y: np.ndarray, horizon: float, camera: float) -> np.ndarray:
  """Inverse depth of the ground seen at rows y (any shape): (y - y_h) / (f h), 0 at and above
  the horizon. camera: f * h (focal length in pixels times camera height)."""
  return (np.maximum(y - horizon, 0.0) / camera).astype(np.float32)


def _plane_phase(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, family: dict):
  """Texture phases (u, v), in cycles, of surface coordinates a, b (metres on the surface): the
  family's pattern rotated by its angle, with a random offset."""
  c, s = np.cos(family["angle"]), np.sin(family["angle"])
  offset = rng.uniform(0, 1, 2)
  return ((a * c + b * s) / family["period"] + offset[0],
          (-a * s + b * c) / family["period"] + offset[1])


def _pattern(rng: np.random.Generator, family: dict, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """(h, w, 3) float32 colour of a family at texture phases u, v (cycles): flat, stripes or
  checker, plus noise. Where the pattern is finer than about 3 pixels a period, it fades to the
  base colour, as a camera's pixels average it (no aliasing)."""
  if family["kind"] == 0:
    pattern = np.zeros(u.shape, np.float32)
  else:
    wave = np.sin(2 * np.pi * u)
    if family["kind"] == 2:
      wave = wave * np.sin(2 * np.pi * v)
    cycles_per_px = np.hypot(*np.gradient(u)) if u.size > 1 and min(u.shape) > 1 else np.zeros(u.shape)
    if family["kind"] == 2 and min(v.shape) > 1:
      cycles_per_px = np.maximum(cycles_per_px, np.hypot(*np.gradient(v)))
    fade = np.clip((0.45 - cycles_per_px) / 0.15, 0.0, 1.0)
    pattern = (np.sign(wave) * fade).astype(np.float32)
  img = family["base"][None, None, :] + 18.0 * pattern[..., None]
  return img + 6.0 * rng.standard_normal(size=u.shape + (3,), dtype=np.float32)


def _standing_mask(rng: np.random.Generator, hw: tuple[int, int], contact_row: int, cx: float,
                   radius: float, shape: str) -> np.ndarray:
  """(H, W) bool shape whose lowest row is `contact_row`, centred on column cx."""
  size = int(np.ceil(2 * radius)) + 5
  local = _shape_mask(rng, (2 * size + 1, 2 * size + 1), np.array([size, size], np.float32), radius, shape)
  rows = np.flatnonzero(local.any(1))
  h, w = hw
  canvas = np.zeros((h, w), bool)
  top, left = contact_row - rows[-1], int(round(cx)) - size   # local row rows[-1] -> contact_row
  ys, xs = np.nonzero(local)
  ys, xs = ys + top, xs + left
  keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
  canvas[ys[keep], xs[keep]] = True
  return canvas


class ProceduralScenes:
  """Random-access source of procedural depth scenes (grain-compatible: len / getitem)."""

  has_depth = True

  def __init__(self, num_scenes: int = 1000, seed: int = 0, split: str = "train",
               size: tuple[int, int] = (120, 160), num_objects: tuple[int, int] = (3, 6),
               min_area: int = MIN_AREA, depth: str = DEPTHS[0], world: str = WORLDS[0]):
    if split not in SPLITS:
      raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if depth not in DEPTHS:
      raise ValueError(f"depth must be one of {', '.join(DEPTHS)}, got {depth!r}")
    if world not in WORLDS:
      raise ValueError(f"world must be one of {', '.join(WORLDS)}, got {world!r}")
    self.depth = depth
    self.world = world
    self.num_scenes = int(num_scenes)
    self.seed = int(seed)
    self.split = split
    self.size = (int(size[0]), int(size[1]))
    self.num_objects = num_objects
    self.min_area = int(min_area)

  def __len__(self) -> int:
    return self.num_scenes

  def layout(self, index: int) -> dict:
    """The full scene: image, depth, owner map and per-object amodal masks and depths.

    Returns dict with 'image' (H, W, 3) uint8, 'depth' (H, W) float32, 'owner' (H, W) int32
    (-1 background, else object id), 'amodal' (K, H, W) bool, 'object_depth' (K,) float32
    (inverse depth of each object), in drawing order (far to near). The camera world adds
    'contact_row' (K,) int (each object's lowest row, where it stands on the ground), 'horizon'
    (the horizon row) and 'camera' (f * h, see `ground_inverse_depth`).
    """
    if not 0 <= index < self.num_scenes:
      raise IndexError(f"scene index {index} out of range [0, {self.num_scenes})")
    rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
    draw = self._camera_layout if self.world == "camera" else self._levels_layout
    return draw(rng)

  def _camera_layout(self, rng: np.random.Generator) -> dict:
    """A pinhole camera over a ground plane (module docstring); objects painted far to near."""
    h, w = self.size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    focal = float(h)                                         # pixels
    # Two colour/texture families; `period` is physical (metres), so its image period follows depth.
    families = [dict(base=rng.uniform(40, 215, 3).astype(np.float32), kind=int(rng.integers(3)),
                     period=float(rng.uniform(*TEXTURE_PERIOD)), angle=float(rng.uniform(0, np.pi)))
                for _ in range(2)]
    horizon = float(rng.uniform(*HORIZON) * h)
    height = float(rng.uniform(*CAMERA_HEIGHT))
    depth = ground_inverse_depth(y, horizon, focal * height)  # (H, W); 0 above the horizon

    # The ground: texture on the plane (X across, Z ahead, metres), so it shrinks toward the horizon.
    bg = families[int(rng.integers(2))]
    z = focal * height / np.maximum(y - horizon, 0.5)
    u, v = _plane_phase(rng, (x - 0.5 * w) * z / focal, z, bg)
    image = _pattern(rng, bg, u, v)
    haze_colour = rng.uniform(150, 230, 3).astype(np.float32)
    sky = y < horizon
    image[sky] = haze_colour + 6.0 * rng.standard_normal((int(sky.sum()), 3), dtype=np.float32)
    owner = np.full((h, w), -1, np.int32)

    # Contact rows on a grid CONTACT_GAP rows apart, below the horizon: distinct depths.
    k = int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))
    candidates = np.arange(np.ceil(horizon + CONTACT_START * (h - horizon)), h, CONTACT_GAP)
    rows = np.sort(rng.choice(candidates, size=min(k, candidates.size), replace=False)).astype(int)
    centre_x = w * rng.uniform(0.3, 0.7)                      # clustered, so that objects overlap
    amodal, object_depth = [], []
    for row in rows:                                          # far to near
      fam = families[int(rng.integers(2))]
      inverse = float(ground_inverse_depth(np.float32(row), horizon, focal * height))
      px_per_metre = focal * inverse                          # apparent size = physical size / depth
      radius = min(float(rng.uniform(*OBJECT_SIZE)) * px_per_metre, MAX_RADIUS * min(h, w))
      cx = float(np.clip(centre_x + rng.normal(0, 0.2 * w), 0.05 * w, 0.95 * w))
      mask = _standing_mask(rng, (h, w), int(row), cx, max(radius, 1.5),
                            SHAPES[int(rng.integers(len(SHAPES)))])
      rows_in, cols_in = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
      if rows_in.size:
        box = (slice(rows_in[0], rows_in[-1] + 1), slice(cols_in[0], cols_in[-1] + 1))
        inside = mask[box]
        # A fronto-parallel object: its texture in metres on its own face.
        colour = dict(fam, base=fam["base"] + rng.uniform(-15, 15, 3).astype(np.float32),
                      angle=fam["angle"] + rng.uniform(-0.3, 0.3))
        u, v = _plane_phase(rng, (x[box] - cx) / px_per_metre, (y[box] - row) / px_per_metre, colour)
        image[box][inside] = _pattern(rng, colour, u, v)[inside]
        depth[box][inside] = inverse
      owner[mask] = len(amodal)
      amodal.append(mask)
      object_depth.append(inverse)
    # Mild haze: surfaces fade toward the sky's colour with distance.
    haze = float(rng.uniform(*HAZE)) * np.exp(-depth / HAZE_INVERSE_DEPTH)[..., None]
    image = np.clip(np.rint(image * (1 - haze) + haze_colour * haze), 0, 255).astype(np.uint8)
    return dict(image=image, depth=depth.astype(np.float32), owner=owner,
                amodal=np.stack(amodal) if amodal else np.zeros((0, h, w), bool),
                object_depth=np.asarray(object_depth, np.float32),
                contact_row=rows[:len(amodal)].astype(np.int64), horizon=horizon,
                camera=focal * height)

  def _levels_layout(self, rng: np.random.Generator) -> dict:
    """The earlier world: objects at random depth levels, clustered around a scene centre."""
    h, w = self.size
    hw = (h, w)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)

    # Two colour/texture families per scene; the background takes one of them.
    families = []
    for _ in range(2):
      families.append(dict(base=rng.uniform(40, 215, 3).astype(np.float32),
                           kind=int(rng.integers(3)), freq=float(rng.uniform(0.25, 0.8)),
                           angle=float(rng.uniform(0, np.pi))))
    bg = families[int(rng.integers(2))]
    image = _texture(rng, y, x, bg["base"], bg["kind"], bg["freq"], bg["angle"])
    # Ground-plane background: far (small inverse depth), lower rows a little closer.
    depth = (0.05 + 0.15 * y / max(h - 1, 1)).astype(np.float32)
    owner = np.full(hw, -1, np.int32)

    k = int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))
    levels = np.sort(rng.choice(DEPTH_LEVELS, size=k, replace=False))  # far -> near
    # Objects clustered around a scene centre so that they overlap.
    centre = np.array([h, w], np.float32) * rng.uniform(0.35, 0.65, 2)
    spread = 0.22 * min(h, w)
    amodal, object_depth = [], []
    for i in range(k):
      fam = families[int(rng.integers(2))]
      c = centre + rng.normal(0, spread, 2) * np.array([1.0, 1.4])
      c = np.clip(c, [0.1 * h, 0.1 * w], [0.9 * h, 0.9 * w])
      radius = rng.uniform(0.12, 0.28) * min(h, w)
      mask = _shape_mask(rng, hw, c, radius, SHAPES[int(rng.integers(len(SHAPES)))])
      # A slightly tilted plane: depth varies by at most TILT inside the object.
      g = rng.uniform(-1, 1, 2)
      g = g / max(np.abs(g).sum(), 1e-6) * TILT / max(radius, 1.0)
      colour_jitter = rng.uniform(-15, 15, 3).astype(np.float32)
      # Texture and depth only inside the object's bounding box (most of a scene's cost).
      rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
      if rows.size:
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        inside = mask[box]
        tex = _texture(rng, y[box], x[box], fam["base"] + colour_jitter, fam["kind"],
                       fam["freq"], fam["angle"] + rng.uniform(-0.3, 0.3))
        image[box][inside] = tex[inside]
        plane = levels[i] + g[0] * (y[box] - c[0]) + g[1] * (x[box] - c[1])
        depth[box][inside] = np.clip(plane, levels[i] - TILT, levels[i] + TILT)[inside]
      owner[mask] = i
      amodal.append(mask)
      object_depth.append(levels[i])
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return dict(image=image, depth=depth.astype(np.float32), owner=owner,
                amodal=np.stack(amodal), object_depth=np.asarray(object_depth, np.float32))

  def __getitem__(self, index: int) -> dict:
    """Training record: image, visible masks of objects with area >= min_area, depth, name."""
    index = int(index)
    scene = self.layout(index)
    visible = [scene["owner"] == i for i in range(scene["amodal"].shape[0])]
    masks = [m for m in visible if m.sum() >= self.min_area]
    masks = np.stack(masks) if masks else np.zeros((0,) + self.size, bool)
    depth = scene["depth"] if self.depth == "true" else occlusion_depth(scene)
    return dict(image=scene["image"], masks=masks, depth=depth,
                name=f"procedural_{self.split}_{self.seed}_{index:06d}")


def occlusion_ranks(owner: np.ndarray, amodal: np.ndarray) -> np.ndarray:
  """(K,) int: each object's rank in the occlusion order the image shows, 0 for an object that
  occludes no visible object, else 1 + the highest rank among those it occludes. Object j
  occludes i when j covers part of i's shape while i stays visible elsewhere.

  owner: (H, W) int32, -1 background, else the id of the object seen there (drawing order).
  amodal: (K, H, W) bool, each object's whole shape.
  """
  k = amodal.shape[0]
  visible = [bool(np.any(owner == i)) for i in range(k)]
  ranks = np.zeros(k, np.int64)
  for j in range(k):  # drawing order is far to near: whatever j occludes is ranked already
    occluded = [i for i in range(j) if visible[i] and np.any(amodal[i] & (owner == j))]
    if occluded:
      ranks[j] = 1 + max(ranks[i] for i in occluded)
  return ranks


def occlusion_depth(scene: dict) -> np.ndarray:
  """(H, W) float32: the relative inverse depth one image of `scene` (a `layout`) shows. The
  ground plane where no object is; each visible object flat at DEPTH_LEVELS[0] + its occlusion
  rank times the level gap. The object levels themselves are random, so no image shows them."""
  ranks = occlusion_ranks(scene["owner"], scene["amodal"])
  gap = DEPTH_LEVELS[1] - DEPTH_LEVELS[0]
  owner = scene["owner"]
  levels = (DEPTH_LEVELS[0] + gap * ranks).astype(np.float32)
  return np.where(owner >= 0, levels[np.maximum(owner, 0)], scene["depth"]).astype(np.float32)


def scenes_from_config(data, split: str, num_scenes: int, depth: str | None = None) -> ProceduralScenes:
  """The scenes a config's `data` section describes (procedural_seed, procedural_size,
  min_object_area, procedural_depth, procedural_world; a key a saved config lacks takes the
  class default, except procedural_world: 'levels', the world such a config was made in).
  depth: overrides data.procedural_depth (e.g. 'true' to score against the true depth)."""
  return ProceduralScenes(num_scenes=int(num_scenes), seed=int(data.procedural_seed), split=split,
                          size=tuple(data.procedural_size), min_area=int(data.get("min_object_area", MIN_AREA)),
                          depth=depth or data.get("procedural_depth", DEPTHS[0]),
                          # A config saved without the key predates the camera world.
                          world=data.get("procedural_world", "levels"))


class ProceduralEvalSource:
  """One evaluation sample per scene: {'image', 'gt' int8 (H, W), 'depth', 'name'}.

  The object of scene i is a deterministic pick among its visible objects, so the held-out
  split can feed the evaluator (the evaluation sample format plus 'depth').
  """

  def __init__(self, scenes: ProceduralScenes):
    self.scenes = scenes

  def __len__(self) -> int:
    return len(self.scenes)

  def __getitem__(self, index: int) -> dict:
    rec = self.scenes[int(index)]
    masks = rec["masks"]
    rng = np.random.default_rng([self.scenes.seed, 7, int(index)])
    gt = np.zeros(self.scenes.size, np.int8)
    if masks.shape[0]:
      gt[masks[int(rng.integers(masks.shape[0]))]] = 1
    return dict(image=rec["image"], gt=gt, depth=rec["depth"], name=rec["name"])
