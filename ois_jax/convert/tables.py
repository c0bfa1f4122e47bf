"""Key tables between the Flax DepthAnythingV2 tree, the original DAv2 `.pth` and Hugging Face.

Each rule is a pair of key templates plus a tensor transform. `{i}`, `{j}`, `{k}` match decimal
indices and `{p}` a parameter name (weight / bias); the same template works in both directions, so
every table converts both ways. Index arithmetic (HF's `neck.convs.{i}` is `layer{i+1}_rn`,
`fusion_stage.layers.{j}` is `refinenet{4-j}`) is declared on the rule.

Tensor layouts: torch Linear (out, in) -> Dense (in, out); Conv2d (O, I, kh, kw) -> (kh, kw, I, O);
ConvTranspose2d (I, O, kh, kw) -> (kh, kw, I, O).
"""

import dataclasses
import functools
import re
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Transform:
  name: str
  to_flax: Callable[[np.ndarray], np.ndarray]
  to_torch: Callable[[np.ndarray], np.ndarray]


IDENTITY = Transform("identity", lambda a: a, lambda a: a)
LINEAR = Transform("linear", lambda a: a.T, lambda a: a.T)
CONV = Transform("conv", lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1))
CONV_T = Transform("conv_transpose", lambda a: a.transpose(2, 3, 0, 1), lambda a: a.transpose(2, 3, 0, 1))

_PLACEHOLDER = re.compile(r"\{([a-z])\}")
_PLACEHOLDER_PATTERNS = {"i": r"\d+", "j": r"\d+", "k": r"\d+", "p": r"weight|bias", "q": r"query|key|value"}


@functools.lru_cache(maxsize=None)
def _compile(template: str) -> re.Pattern:
  """'a.{i}.b' -> ^a\\.(?P<i>\\d+)\\.b$."""
  parts = _PLACEHOLDER.split(template)  # literal, name, literal, name, ...
  regex = "".join(re.escape(part) if n % 2 == 0 else f"(?P<{part}>{_PLACEHOLDER_PATTERNS[part]})"
                  for n, part in enumerate(parts))
  return re.compile(f"^{regex}$")


@dataclasses.dataclass(frozen=True)
class Rule:
  """`left` <-> `right` key templates; `index_maps[name] = (left->right, right->left)`."""
  left: str
  right: str
  transform: Transform = IDENTITY
  index_maps: tuple = ()

  def _convert(self, key, src, dst, direction):
    m = _compile(src).match(key)
    if m is None:
      return None
    values = dict(m.groupdict())
    for name, fns in self.index_maps:
      values[name] = str(fns[direction](int(values[name])))
    return _PLACEHOLDER.sub(lambda g: values[g.group(1)], dst)

  def forward(self, key: str) -> str | None:
    return self._convert(key, self.left, self.right, 0)

  def backward(self, key: str) -> str | None:
    return self._convert(key, self.right, self.left, 1)


# --- original DAv2 state dict (left) <-> Flax path (right) -------------------------------------
ORIGINAL_TO_FLAX = (
    Rule("pretrained.cls_token", "pretrained/cls_token"),
    Rule("pretrained.pos_embed", "pretrained/pos_embed"),
    Rule("pretrained.mask_token", "pretrained/mask_token"),
    Rule("pretrained.patch_embed.proj.weight", "pretrained/patch_embed/proj/kernel", CONV),
    Rule("pretrained.patch_embed.proj.bias", "pretrained/patch_embed/proj/bias"),
    Rule("pretrained.blocks.{i}.norm{j}.weight", "pretrained/blocks_{i}/norm{j}/scale"),
    Rule("pretrained.blocks.{i}.norm{j}.bias", "pretrained/blocks_{i}/norm{j}/bias"),
    Rule("pretrained.blocks.{i}.attn.qkv.weight", "pretrained/blocks_{i}/attn/qkv/kernel", LINEAR),
    Rule("pretrained.blocks.{i}.attn.qkv.bias", "pretrained/blocks_{i}/attn/qkv/bias"),
    Rule("pretrained.blocks.{i}.attn.proj.weight", "pretrained/blocks_{i}/attn/proj/kernel", LINEAR),
    Rule("pretrained.blocks.{i}.attn.proj.bias", "pretrained/blocks_{i}/attn/proj/bias"),
    Rule("pretrained.blocks.{i}.mlp.fc{j}.weight", "pretrained/blocks_{i}/mlp/fc{j}/kernel", LINEAR),
    Rule("pretrained.blocks.{i}.mlp.fc{j}.bias", "pretrained/blocks_{i}/mlp/fc{j}/bias"),
    Rule("pretrained.blocks.{i}.ls{j}.gamma", "pretrained/blocks_{i}/ls{j}/gamma"),
    Rule("pretrained.norm.weight", "pretrained/norm/scale"),
    Rule("pretrained.norm.bias", "pretrained/norm/bias"),
    Rule("depth_head.projects.{i}.weight", "depth_head/projects_{i}/kernel", CONV),
    Rule("depth_head.projects.{i}.bias", "depth_head/projects_{i}/bias"),
    Rule("depth_head.resize_layers.0.weight", "depth_head/resize_layers_0/kernel", CONV_T),
    Rule("depth_head.resize_layers.1.weight", "depth_head/resize_layers_1/kernel", CONV_T),
    Rule("depth_head.resize_layers.3.weight", "depth_head/resize_layers_3/kernel", CONV),
    Rule("depth_head.resize_layers.{i}.bias", "depth_head/resize_layers_{i}/bias"),
    Rule("depth_head.scratch.layer{i}_rn.weight", "depth_head/scratch/layer{i}_rn/kernel", CONV),
    Rule("depth_head.scratch.refinenet{i}.out_conv.weight",
         "depth_head/scratch/refinenet{i}/out_conv/kernel", CONV),
    Rule("depth_head.scratch.refinenet{i}.out_conv.bias", "depth_head/scratch/refinenet{i}/out_conv/bias"),
    Rule("depth_head.scratch.refinenet{i}.resConfUnit{j}.conv{k}.weight",
         "depth_head/scratch/refinenet{i}/resConfUnit{j}/conv{k}/kernel", CONV),
    Rule("depth_head.scratch.refinenet{i}.resConfUnit{j}.conv{k}.bias",
         "depth_head/scratch/refinenet{i}/resConfUnit{j}/conv{k}/bias"),
    Rule("depth_head.scratch.output_conv1.weight", "depth_head/scratch/output_conv1/kernel", CONV),
    Rule("depth_head.scratch.output_conv1.bias", "depth_head/scratch/output_conv1/bias"),
    Rule("depth_head.scratch.output_conv2.{i}.weight", "depth_head/scratch/output_conv2_{i}/kernel", CONV),
    Rule("depth_head.scratch.output_conv2.{i}.bias", "depth_head/scratch/output_conv2_{i}/bias"),
)

_PLUS_ONE = (lambda i: i + 1, lambda i: i - 1)
_REVERSE4 = (lambda j: 4 - j, lambda i: 4 - i)  # HF fuses deepest first: layers.0 is refinenet4

# --- Hugging Face DepthAnythingForDepthEstimation (left) <-> original DAv2 (right) ----------------
# The fused qkv is handled separately (HF_QKV) because one original tensor is three HF tensors.
HF_TO_ORIGINAL = (
    Rule("backbone.embeddings.cls_token", "pretrained.cls_token"),
    Rule("backbone.embeddings.mask_token", "pretrained.mask_token"),
    Rule("backbone.embeddings.position_embeddings", "pretrained.pos_embed"),
    Rule("backbone.embeddings.patch_embeddings.projection.{p}", "pretrained.patch_embed.proj.{p}"),
    Rule("backbone.encoder.layer.{i}.norm{j}.{p}", "pretrained.blocks.{i}.norm{j}.{p}"),
    Rule("backbone.encoder.layer.{i}.attention.output.dense.{p}", "pretrained.blocks.{i}.attn.proj.{p}"),
    Rule("backbone.encoder.layer.{i}.layer_scale{j}.lambda1", "pretrained.blocks.{i}.ls{j}.gamma"),
    Rule("backbone.encoder.layer.{i}.mlp.fc{j}.{p}", "pretrained.blocks.{i}.mlp.fc{j}.{p}"),
    Rule("backbone.layernorm.{p}", "pretrained.norm.{p}"),
    Rule("neck.reassemble_stage.layers.{i}.projection.{p}", "depth_head.projects.{i}.{p}"),
    Rule("neck.reassemble_stage.layers.{i}.resize.{p}", "depth_head.resize_layers.{i}.{p}"),
    Rule("neck.convs.{i}.weight", "depth_head.scratch.layer{i}_rn.weight", index_maps=(("i", _PLUS_ONE),)),
    Rule("neck.fusion_stage.layers.{i}.projection.{p}", "depth_head.scratch.refinenet{i}.out_conv.{p}",
         index_maps=(("i", _REVERSE4),)),
    Rule("neck.fusion_stage.layers.{i}.residual_layer{j}.convolution{k}.{p}",
         "depth_head.scratch.refinenet{i}.resConfUnit{j}.conv{k}.{p}", index_maps=(("i", _REVERSE4),)),
    Rule("head.conv1.{p}", "depth_head.scratch.output_conv1.{p}"),
    Rule("head.conv2.{p}", "depth_head.scratch.output_conv2.0.{p}"),
    Rule("head.conv3.{p}", "depth_head.scratch.output_conv2.2.{p}"),
)
HF_QKV_PARTS = ("query", "key", "value")  # concatenated in this order along the output axis
HF_QKV = Rule("backbone.encoder.layer.{i}.attention.attention.{q}.{p}", "pretrained.blocks.{i}.attn.qkv.{p}")

# transformers >= 5 names the Dinov2 attention differently in memory (state_dict()); files on the
# Hub and save_pretrained() keep the names above. Both are read; files are written in the Hub names.
HF_V5_ALIASES = (
    (re.compile(r"\.attention\.([qkv])_proj\."),
     lambda m: ".attention.attention." + {"q": "query", "k": "key", "v": "value"}[m.group(1)] + "."),
    (re.compile(r"\.attention\.o_proj\."), lambda m: ".attention.output.dense."),
)


def apply_first(rules, key: str, backward: bool = False):
  """(converted key, rule) of the first rule matching `key`, or (None, None)."""
  for rule in rules:
    out = rule.backward(key) if backward else rule.forward(key)
    if out is not None:
      return out, rule
  return None, None


def hf_qkv_keys(original_key: str) -> list[str] | None:
  """'pretrained.blocks.3.attn.qkv.weight' -> the 3 HF keys (query, key, value), else None."""
  m = _compile(HF_QKV.right).match(original_key)
  if m is None:
    return None
  return [HF_QKV.left.format(i=m["i"], q=part, p=m["p"]) for part in HF_QKV_PARTS]


def hf_qkv_target(hf_key: str) -> tuple[str, int] | None:
  """'...attention.attention.key.bias' -> ('pretrained.blocks.i.attn.qkv.bias', 1), else None."""
  m = _compile(HF_QKV.left).match(hf_key)
  if m is None or m["q"] not in HF_QKV_PARTS:
    return None
  return HF_QKV.right.format(i=m["i"], p=m["p"]), HF_QKV_PARTS.index(m["q"])


def normalize_hf_key(key: str) -> str:
  for pattern, repl in HF_V5_ALIASES:
    key = pattern.sub(repl, key)
  return key
