"""DepthAnythingV2 (DINOv2 encoder + DPT depth head) with the original pre/post-processing.

`DepthAnythingV2.infer_image(params, image)` returns what the original
`DepthAnythingV2.infer_image(image_bgr, 518)` returns for the same picture: float32 relative
inverse depth (larger = closer) at the image's original H x W. Differences from the original API:
the image is RGB (the original takes OpenCV's BGR and converts), and `params` are passed in.

The parameter tree mirrors the original checkpoint: `{'pretrained': ViT, 'depth_head': DPT head}`.
Besides the released sizes (vits, vitb, vitl), `variant='custom'` with a `DepthSize` builds the
same architecture at other widths and depths (the quickstart's small depth model).
"""

import dataclasses
import functools

import cv2
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.errors import ImageError
from ois_jax import geometry
from ois_jax.geometry import PATCH_SIZE
from ois_jax.models.dpt import HEAD_SIZES, DPTHead
from ois_jax.models.vit import VARIANTS, DinoVisionTransformer

MEAN, STD = geometry.IMAGENET_MEAN, geometry.IMAGENET_STD  # DAv2's image2tensor normalisation
MODEL_NAME = "depth_anything_v2"


@dataclasses.dataclass(frozen=True)
class DepthSize:
  """Sizes of a DepthAnythingV2: the DINOv2 encoder and the DPT depth head.

  embed_dim, depth, num_heads: the ViT; intermediate_layers: the block indices whose outputs feed
  the head; features, out_channels: DAv2's `model_configs` entry of the head.
  """
  embed_dim: int
  depth: int
  num_heads: int
  intermediate_layers: tuple[int, ...]
  features: int
  out_channels: tuple[int, ...]

  @classmethod
  def of_variant(cls, variant: str) -> "DepthSize":
    """The sizes of a released DAv2 variant (vits, vitb, vitl)."""
    if variant not in VARIANTS:
      raise ValueError(f"unknown DepthAnythingV2 variant {variant!r}; expected one of "
                       f"{sorted(VARIANTS)} (or 'custom' with its sizes)")
    v = VARIANTS[variant]
    features, out_channels = HEAD_SIZES[variant]
    return cls(v.embed_dim, v.depth, v.num_heads, v.intermediate_layers, features, out_channels)

  @classmethod
  def from_model_config(cls, m) -> "DepthSize":
    """From a config's `model` section, in the config's names (configs/common.py SIZE_KEYS)."""
    return cls(int(m["encoder_embed_dim"]), int(m["encoder_depth"]), int(m["encoder_num_heads"]),
               tuple(int(i) for i in m["encoder_layers"]), int(m["head_features"]),
               tuple(int(c) for c in m["head_out_channels"]))

  def model_config_keys(self, input_size: int) -> dict:
    """The inverse of `from_model_config`: {SIZE_KEYS key: value}."""
    return {"encoder_embed_dim": self.embed_dim, "encoder_depth": self.depth,
            "encoder_num_heads": self.num_heads, "encoder_layers": tuple(self.intermediate_layers),
            "head_features": self.features, "head_out_channels": tuple(self.out_channels),
            "input_size": int(input_size)}

  @classmethod
  def from_dict(cls, d: dict) -> "DepthSize":
    """From a dict with exactly the field names; a missing or unknown key is a ValueError."""
    names = [f.name for f in dataclasses.fields(cls)]
    missing, unknown = sorted(set(names) - set(d)), sorted(set(d) - set(names))
    if missing or unknown:
      raise ValueError("DepthAnythingV2 sizes need the keys " + ", ".join(names)
                       + (f"; missing {', '.join(missing)}" if missing else "")
                       + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    size = cls(**{k: tuple(int(x) for x in d[k]) if isinstance(d[k], (list, tuple)) else int(d[k])
                  for k in names})
    size.validate()
    return size

  def to_dict(self) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

  def validate(self) -> None:
    """ValueError naming the first size that cannot build a model."""
    if min(self.embed_dim, self.depth, self.num_heads, self.features) <= 0:
      raise ValueError(f"DepthAnythingV2 sizes must be positive, got {self}")
    if self.embed_dim % self.num_heads:
      raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
    layers = self.intermediate_layers
    if len(layers) != 4 or list(layers) != sorted(set(layers)) or not 0 <= layers[0] <= layers[-1] < self.depth:
      raise ValueError(f"intermediate_layers must be 4 increasing block indices in [0, {self.depth}), "
                       f"got {list(layers)}")
    if len(self.out_channels) != 4 or min(self.out_channels) <= 0:
      raise ValueError(f"out_channels must be 4 positive widths, got {list(self.out_channels)}")

  def variant(self) -> str:
    """The released variant with these sizes, else 'custom'."""
    return next((name for name in VARIANTS if DepthSize.of_variant(name) == self), "custom")


@dataclasses.dataclass(frozen=True)
class DepthConfig:
  """What a depth checkpoint needs to rebuild its model (stored next to the params as JSON).

  variant: vits | vitb | vitl, or "custom" with `size` (a small model of one's own, e.g. the
  quickstart's stage 1; same ViT + DPT code, other widths and depths).
  """
  variant: str = "vits"
  pos_embed_mode: str = "original"  # "original" (DAv2) | "hf" (Hugging Face interpolation)
  input_size: int = 518
  size: DepthSize | None = None     # the sizes when variant == "custom"

  def __post_init__(self):
    for name in ("variant", "pos_embed_mode"):
      if not isinstance(getattr(self, name), str):
        raise ValueError(f"DepthConfig.{name} must be a string, got {getattr(self, name)!r}")
    if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or self.input_size < 14:
      raise ValueError(f"DepthConfig.input_size must be an integer >= 14, got {self.input_size!r}")
    if self.variant == "custom":
      if self.size is None:
        raise ValueError("DepthConfig(variant='custom') needs size=DepthSize(...)")
      self.size.validate()
    elif self.size is not None and self.size != DepthSize.of_variant(self.variant):
      raise ValueError(f"DepthConfig: size {self.size} is not the size of variant {self.variant}")

  @property
  def sizes(self) -> DepthSize:
    return self.size if self.variant == "custom" else DepthSize.of_variant(self.variant)

  def to_dict(self) -> dict:
    d = {"model": MODEL_NAME, "variant": self.variant, "pos_embed_mode": self.pos_embed_mode,
         "input_size": self.input_size}
    if self.variant == "custom":
      d["size"] = self.size.to_dict()
    return d

  @classmethod
  def from_dict(cls, d: dict) -> "DepthConfig":
    fields = {f.name for f in dataclasses.fields(cls)} - {"size"}
    size = DepthSize.from_dict(d["size"]) if d.get("size") is not None else None
    return cls(**{k: v for k, v in d.items() if k in fields}, size=size)


class DepthAnythingV2(nn.Module):
  """Encoder + depth head. (B, H, W, 3) normalised, H, W multiples of 14 -> (B, H, W) depth."""
  variant: str = "vits"
  pos_embed_mode: str = "original"
  dtype: jnp.dtype = jnp.float32
  attention: str = "auto"  # ViT self-attention implementation, see vit.self_attention
  size: DepthSize | None = None  # the sizes when variant == "custom"

  @classmethod
  def from_config(cls, config: DepthConfig, **kwargs) -> "DepthAnythingV2":
    return cls(config.variant, config.pos_embed_mode, size=config.size, **kwargs)

  @property
  def sizes(self) -> DepthSize:
    return DepthConfig(self.variant, size=self.size).sizes

  @nn.compact
  def __call__(self, images: jnp.ndarray, return_features: bool = False):
    """images: (B, H, W, 3). Returns depth (B, H, W) float32 [, the 4 encoder features (B, h, w, D)]."""
    s = self.sizes
    features = DinoVisionTransformer(s.embed_dim, s.depth, s.num_heads, s.intermediate_layers,
                                     pos_embed_mode=self.pos_embed_mode, dtype=self.dtype,
                                     attention=self.attention, name="pretrained")(images)
    depth = DPTHead(s.features, s.out_channels, dtype=self.dtype, name="depth_head")(features)
    depth = nn.relu(depth[..., 0]).astype(jnp.float32)  # DepthAnythingV2.forward's F.relu
    return (depth, features) if return_features else depth

  def init_params(self, rng: jax.Array) -> dict:
    """Flax-initialised parameters {'pretrained': ..., 'depth_head': ...} (slow to compile on CPU)."""
    return jax.jit(self.init)(rng, jnp.zeros((1, 28, 28, 3), jnp.float32))["params"]

  def random_params(self, seed: int = 0) -> dict:
    """Random parameters drawn in NumPy (fast, no compilation): for tests and benchmarks.

    Kernels ~ N(0, 1 / fan_in) so activations keep their scale, biases ~ 0.1 N(0, 1), norm scales
    and layer scales around 1, tokens and position table ~ N(0, 1).
    """
    shapes = jax.eval_shape(self.init, jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 3)))["params"]
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
      name, shape = path[-1].key, leaf.shape
      if name == "kernel":
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))).astype(np.float32)
      if name == "bias":
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
      if name in ("scale", "gamma"):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
      return rng.standard_normal(shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)

  def forward(self, params: dict, x: jnp.ndarray) -> jax.Array:
    """Jitted network: (B, H, W, 3) normalised -> (B, H, W) depth (one executable per shape)."""
    return _compiled_forward(self)(params, x)

  def infer_image(self, params: dict, image: np.ndarray, input_size: int = 518) -> np.ndarray:
    """image: (H, W, 3) uint8 RGB. Returns (H, W) float32 relative inverse depth."""
    x, (h, w) = image2tensor(image, input_size)
    depth = self.forward(params, jnp.asarray(x))  # (1, h', w')
    return np.asarray(_resize_back(depth, (h, w)))


@functools.lru_cache(maxsize=8)
def _compiled_forward(model: DepthAnythingV2):
  return jax.jit(lambda params, x: model.apply({"params": params}, x))


@functools.partial(jax.jit, static_argnums=1)
def _resize_back(depth: jnp.ndarray, out_hw: tuple[int, int]) -> jnp.ndarray:
  """(1, h', w') -> (H, W), bilinear with align_corners=True as the original infer_image."""
  return geometry.resize_bilinear_align_corners(depth[..., None], out_hw)[0, ..., 0]


def resized_shape(h: int, w: int, input_size: int = 518) -> tuple[int, int]:
  """DAv2's Resize(keep_aspect_ratio, ensure_multiple_of=14, 'lower_bound') output (h', w')."""
  scale = max(input_size / h, input_size / w)  # the shorter side goes to input_size

  def to_multiple(x):
    y = int(np.round(x / PATCH_SIZE) * PATCH_SIZE)  # np.round: halves to even, as the original
    if y < input_size:
      y = int(np.ceil(x / PATCH_SIZE) * PATCH_SIZE)
    return y

  return to_multiple(scale * h), to_multiple(scale * w)


# DAv2's resize scales the SHORTER side to the input size, so an extreme aspect ratio makes the
# network input enormous (10000 x 30 -> 172,648 x 518: tens of GB). The long side is capped.
MAX_LONG_SIDE_FACTOR = 8


def image2tensor(image: np.ndarray, input_size: int = 518) -> tuple[np.ndarray, tuple[int, int]]:
  """The original preprocessing. image: (H, W, 3) uint8 RGB -> ((1, h', w', 3) float32, (H, W)).

  ImageError when the resized long side would exceed MAX_LONG_SIDE_FACTOR x input_size (an
  aspect ratio beyond 8:1 at the default size): crop or pad such images first."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ImageError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
  h, w = image.shape[:2]
  new_h, new_w = resized_shape(h, w, input_size)
  limit = MAX_LONG_SIDE_FACTOR * input_size
  if max(new_h, new_w) > limit:
    raise ImageError(f"image {w}x{h}: DepthAnythingV2's resize (shorter side to {input_size}) would "
                     f"make it {new_w}x{new_h}; the longer side is limited to {limit} px "
                     f"({MAX_LONG_SIDE_FACTOR} x the input size). Crop or pad it to an aspect ratio "
                     f"of at most {MAX_LONG_SIDE_FACTOR}:1")
  x = image / 255.0  # float64, as the original
  x = cv2.resize(x, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
  x = (x - np.array(MEAN)) / np.array(STD)
  return x.astype(np.float32)[None], (h, w)


def load_depth_model(checkpoint_dir: str, **model_kwargs) -> tuple[DepthAnythingV2, DepthConfig, dict]:
  """Rebuild a DepthAnythingV2 from a self-describing checkpoint dir (see ois_jax.checkpoint)."""
  from ois_jax import checkpoint  # lazy: orbax is slow to import
  from ois_jax.errors import CheckpointError, first_line
  from ois_jax.models import ois
  params, config_dict = checkpoint.load_checkpoint(checkpoint_dir)
  if config_dict.get("model") != MODEL_NAME:
    raise CheckpointError(f"{checkpoint_dir}: holds a {config_dict.get('model')!r} checkpoint, "
                          f"not a {MODEL_NAME} depth model")
  # Edited metadata (a string for a number, a variant the weights are not of) fails here, in
  # one line, not inside the first forward pass.
  try:
    config = DepthConfig.from_dict(config_dict)
    model = DepthAnythingV2.from_config(config, **model_kwargs)
    expected = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 3)))["params"]
  except (ValueError, TypeError, KeyError, AttributeError) as e:
    raise CheckpointError(f"{checkpoint_dir}: its metadata ({checkpoint.METADATA_FILE}) does not "
                          f"describe a {MODEL_NAME} model ({type(e).__name__}: {first_line(e)})") from None
  problems = []
  ois._check_tree(expected, params, "params", problems, "the checkpoint")
  if problems:
    raise CheckpointError(f"{checkpoint_dir}: the weights do not fit the {config.variant} model its "
                          f"metadata describes ({len(problems)} problems: {'; '.join(problems[:2])})")
  return model, config, params
