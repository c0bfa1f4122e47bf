"""Independent PyTorch references for the converter tests (built offline, random weights).

- `hf_reference(variant)`: transformers' DepthAnythingForDepthEstimation built from a config
  (see ois_jax/convert/tables.py), with every weight re-drawn at unit-preserving scale so that no layer is inert
  (`randomize`, also for models of other sizes).
- `original_pos_embed`: DINOv2/DAv2's own position-embedding interpolation (F.interpolate with
  scale_factor=(grid + 0.1) / 37), patched into the HF model to turn it into the original DAv2
  forward at any input size.
- `to_original_layout`: HF tensors -> `pretrained.*` / `depth_head.*` keys, written here by hand
  (independently of ois_jax.convert.tables).
"""

import functools
import math
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
F = torch.nn.functional

HF_SIZES = {  # variant -> (hidden, heads, neck_hidden_sizes, fusion_hidden_size)
    "vits": (384, 6, [48, 96, 192, 384], 64),
    "vitb": (768, 12, [96, 192, 384, 768], 128),
}


def build_hf_model(variant: str, seed: int = 0):
  hidden, heads, neck, fusion = HF_SIZES[variant]
  config = transformers.DepthAnythingConfig(
      backbone_config=transformers.Dinov2Config(
          hidden_size=hidden, num_hidden_layers=12, num_attention_heads=heads, image_size=518,
          patch_size=14, out_indices=[3, 6, 9, 12], apply_layernorm=True, reshape_hidden_states=False),
      reassemble_hidden_size=hidden, neck_hidden_sizes=neck, fusion_hidden_size=fusion,
      depth_estimation_type="relative")
  return randomize_weights(transformers.DepthAnythingForDepthEstimation(config).eval(), seed)


def randomize_weights(model, seed: int = 0):
  """Re-draws every weight of an HF model at unit-preserving scale (no inert layer)."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("lambda1"):  # layer scale
        p.copy_(0.5 + 0.5 * torch.rand(p.shape, generator=gen))
      elif "norm" in name and name.endswith("weight"):
        p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
      elif name.endswith("weight") and p.ndim >= 2:  # linear / conv: unit-preserving scale
        p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
      elif name.endswith("bias"):
        p.copy_(0.1 * torch.randn(p.shape, generator=gen))
      else:  # cls / mask tokens, position table
        p.copy_(torch.randn(p.shape, generator=gen))
  return model


@pytest.fixture(scope="session")
def randomize():
  return randomize_weights


@functools.lru_cache(maxsize=None)
def _cached_hf(variant):
  return build_hf_model(variant)


@pytest.fixture(scope="session")
def hf_reference():
  return _cached_hf


def _original_interpolate_pos_encoding(self, embeddings, height, width):
  """DINOv2 (facebookresearch) / DAv2 interpolate_pos_encoding, in HF's module."""
  pos = self.position_embeddings
  npatch, n = embeddings.shape[1] - 1, pos.shape[1] - 1
  if npatch == n and height == width:
    return pos
  side = int(math.sqrt(n))
  gh, gw = height // 14 + 0.1, width // 14 + 0.1
  patch = pos[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
  patch = F.interpolate(patch, scale_factor=(gh / side, gw / side), mode="bicubic", antialias=False)
  assert patch.shape[-2:] == (height // 14, width // 14)
  patch = patch.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])
  return torch.cat([pos[:, :1], patch], dim=1)


@pytest.fixture(scope="session")
def original_pos_embed():
  """Context manager factory: model.backbone.embeddings uses the original interpolation inside."""
  import contextlib

  @contextlib.contextmanager
  def patched(model):
    emb = model.backbone.embeddings
    emb.interpolate_pos_encoding = types.MethodType(_original_interpolate_pos_encoding, emb)
    try:
      yield model
    finally:
      del emb.interpolate_pos_encoding
  return patched


def _to_original_layout(model) -> dict:
  """HF DepthAnythingForDepthEstimation -> original DAv2 state dict, mapped by hand."""
  sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
  out = {}
  emb = "backbone.embeddings."
  out["pretrained.cls_token"] = sd[emb + "cls_token"]
  out["pretrained.pos_embed"] = sd[emb + "position_embeddings"]
  out["pretrained.mask_token"] = sd[emb + "mask_token"]
  for p in ("weight", "bias"):
    out[f"pretrained.patch_embed.proj.{p}"] = sd[emb + f"patch_embeddings.projection.{p}"]
    out[f"pretrained.norm.{p}"] = sd[f"backbone.layernorm.{p}"]
  num_layers = model.config.backbone_config.num_hidden_layers
  for i in range(num_layers):
    src, dst = f"backbone.encoder.layer.{i}.", f"pretrained.blocks.{i}."
    for p in ("weight", "bias"):
      out[dst + f"attn.qkv.{p}"] = torch.cat(
          [sd[src + f"attention.{x}_proj.{p}"] for x in ("q", "k", "v")], dim=0)
      out[dst + f"attn.proj.{p}"] = sd[src + f"attention.o_proj.{p}"]
      for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
        out[dst + f"{name}.{p}"] = sd[src + f"{name}.{p}"]
    out[dst + "ls1.gamma"] = sd[src + "layer_scale1.lambda1"]
    out[dst + "ls2.gamma"] = sd[src + "layer_scale2.lambda1"]
  for i in range(4):
    for p in ("weight", "bias"):
      out[f"depth_head.projects.{i}.{p}"] = sd[f"neck.reassemble_stage.layers.{i}.projection.{p}"]
      if i != 2:
        out[f"depth_head.resize_layers.{i}.{p}"] = sd[f"neck.reassemble_stage.layers.{i}.resize.{p}"]
    out[f"depth_head.scratch.layer{i + 1}_rn.weight"] = sd[f"neck.convs.{i}.weight"]
  for j, refinenet in enumerate((4, 3, 2, 1)):
    src, dst = f"neck.fusion_stage.layers.{j}.", f"depth_head.scratch.refinenet{refinenet}."
    for p in ("weight", "bias"):
      out[dst + f"out_conv.{p}"] = sd[src + f"projection.{p}"]
      for unit in (1, 2):
        for conv in (1, 2):
          out[dst + f"resConfUnit{unit}.conv{conv}.{p}"] = sd[src + f"residual_layer{unit}.convolution{conv}.{p}"]
  for p in ("weight", "bias"):
    out[f"depth_head.scratch.output_conv1.{p}"] = sd[f"head.conv1.{p}"]
    out[f"depth_head.scratch.output_conv2.0.{p}"] = sd[f"head.conv2.{p}"]
    out[f"depth_head.scratch.output_conv2.2.{p}"] = sd[f"head.conv3.{p}"]
  assert len(out) == len(sd) - 4 * num_layers, (len(out), len(sd))  # q, k, v fused into qkv
  return out


@pytest.fixture(scope="session")
def to_original_layout():
  return _to_original_layout


def reference_infer_image(model, image_rgb: np.ndarray, input_size: int) -> np.ndarray:
  """DAv2's infer_image (image2tensor -> forward -> align-corners resize) on a torch model."""
  h, w = image_rgb.shape[:2]
  import cv2
  scale = max(input_size / h, input_size / w)

  def constrain(x):  # DAv2 Resize.constrain_to_multiple_of(min_val=input_size)
    y = (np.round(x / 14) * 14).astype(int)
    if y < input_size:
      y = (np.ceil(x / 14) * 14).astype(int)
    return y

  new_h, new_w = constrain(scale * h), constrain(scale * w)
  x = cv2.resize(image_rgb / 255.0, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
  x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)).astype(np.float32))[None]
  with torch.no_grad():
    depth = F.relu(model(x).predicted_depth)
    depth = F.interpolate(depth[:, None], (h, w), mode="bilinear", align_corners=True)[0, 0]
  return depth.numpy()


@pytest.fixture(scope="session")
def reference_infer():
  return reference_infer_image
