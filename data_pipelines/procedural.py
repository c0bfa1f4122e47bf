"""Procedural scenes of overlapping objects at known depths, with the true depth map.

No pretrained depth model exists in this environment, so these scenes are where the order path
of OIS gets real depth (cfg.model.depth_source == 'external'). Each scene is drawn far-to-near
(painter's algorithm): objects are disks, ellipses, rotated rectangles and convex polygons at
distinct depths; a scene uses only two colour/texture families, shared by the background and
several objects, so colour alone is ambiguous while depth separates touching look-alikes.

Records (same format as the real training sources):
  {'image': uint8 (H, W, 3), 'masks': bool (K, H, W) visible part of each object,
   'depth': float32 (H, W) relative inverse depth (larger = closer), 'name': str}
Deterministic per (seed, split, index); 'train' and 'val' use disjoint random streams.

The object depths are random levels, so one image shows them only through occlusion. With
`depth='occlusion'` the records carry instead the depth the image does show (`occlusion_depth`):
each visible object at its rank in the occlusion order, on the same ground plane.
"""

from __future__ import annotations

import cv2
import numpy as np

SPLITS = {"train": 0, "val": 1}
DEPTH_LEVELS = np.linspace(0.3, 1.0, 12)  # object inverse depths: gap 0.064 between levels
TILT = 0.015        # max in-object depth variation (< half a level gap, keeps order strict)
SHAPES = ("disk", "ellipse", "rectangle", "polygon")
DEPTHS = ("true", "occlusion")
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


class ProceduralScenes:
  """Random-access source of procedural depth scenes (grain-compatible: len / getitem)."""

  has_depth = True

  def __init__(self, num_scenes: int = 1000, seed: int = 0, split: str = "train",
               size: tuple[int, int] = (120, 160), num_objects: tuple[int, int] = (3, 6),
               min_area: int = MIN_AREA, depth: str = DEPTHS[0]):
    if split not in SPLITS:
      raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if depth not in DEPTHS:
      raise ValueError(f"depth must be one of {', '.join(DEPTHS)}, got {depth!r}")
    self.depth = depth
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
    (mean inverse depth of each object), in drawing order (far to near).
    """
    if not 0 <= index < self.num_scenes:
      raise IndexError(f"scene index {index} out of range [0, {self.num_scenes})")
    rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
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
  min_object_area, procedural_depth; a key a saved config lacks takes the class default).
  depth: overrides data.procedural_depth (e.g. 'true' to score against the true depth)."""
  return ProceduralScenes(num_scenes=int(num_scenes), seed=int(data.procedural_seed), split=split,
                          size=tuple(data.procedural_size), min_area=int(data.get("min_object_area", MIN_AREA)),
                          depth=depth or data.get("procedural_depth", DEPTHS[0]))


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
