"""The OIS segmentation decoder: DAv2's DPT head split into a per-image and a per-click part.

Parameter names and shapes are exactly those of `dpt.DPTHead`, so the head is initialised by
copying the depth head's parameters (`ois.init_from_depth`); the only difference is the
output: a raw 1-channel logit (no final ReLU).

Only the deepest level carries the prompt (see ois.py), so everything that depends on the
three shallower levels - their projections, resizes, layerN_rn convs and the skip residual
unit of refinenet1-3 (`resConfUnit1`) - is computed once per image by `prepare`; `finish` runs
per click from level 4 onwards. `__call__` = `finish(level4, prepare(levels 1-3))` equals
`DPTHead(final_relu=False)` (tested).
"""

import flax.linen as nn
import jax.numpy as jnp

from ois_jax import geometry
from ois_jax.models import dpt


class SplitFusionBlock(nn.Module):
  """`dpt.FeatureFusionBlock` with the skip unit callable on its own."""
  features: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.resConfUnit1 = dpt.ResidualConvUnit(self.dtype)
    self.resConfUnit2 = dpt.ResidualConvUnit(self.dtype)
    self.out_conv = dpt.conv(self.features, 1, dtype=self.dtype)

  def skip(self, x):
    """resConfUnit1 on the skip input (per image). (B, h, w, F) -> (B, h, w, F)."""
    return self.resConfUnit1(x)

  def __call__(self, x, skip=None, size=None):
    """x (B, h, w, F) + prepared skip -> (B, *size, F) (default 2x)."""
    if skip is not None:
      x = x + skip
    elif self.is_initializing():
      self.resConfUnit1(x)  # stored by refinenet4 in every checkpoint, never used
    x = self.resConfUnit2(x)
    size = size or (2 * x.shape[1], 2 * x.shape[2])
    # DPT resizes, then applies the 1x1 out_conv; both are linear and the interpolation weights
    # sum to 1, so the conv goes first here: same result, 4x fewer multiply-adds.
    return geometry.resize_bilinear_align_corners(self.out_conv(x), size)


class SplitScratch(nn.Module):
  """`dpt.Scratch` with the same parameter names."""
  features: int
  num_outputs: int = 1
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    f, d = self.features, self.dtype
    self.layer1_rn = dpt.conv(f, 3, bias=False, dtype=d)
    self.layer2_rn = dpt.conv(f, 3, bias=False, dtype=d)
    self.layer3_rn = dpt.conv(f, 3, bias=False, dtype=d)
    self.layer4_rn = dpt.conv(f, 3, bias=False, dtype=d)
    self.refinenet1 = SplitFusionBlock(f, d)
    self.refinenet2 = SplitFusionBlock(f, d)
    self.refinenet3 = SplitFusionBlock(f, d)
    self.refinenet4 = SplitFusionBlock(f, d)
    self.output_conv1 = dpt.conv(f // 2, 3, dtype=d)
    self.output_conv2_0 = dpt.conv(32, 3, dtype=d)
    self.output_conv2_2 = dpt.conv(self.num_outputs, 1, dtype=jnp.float32)  # float32 logits

  def prepare(self, l1, l2, l3):
    """Projected levels 1-3 -> the skip features of refinenet1-3 (per image)."""
    return {"skip1": self.refinenet1.skip(self.layer1_rn(l1)),
            "skip2": self.refinenet2.skip(self.layer2_rn(l2)),
            "skip3": self.refinenet3.skip(self.layer3_rn(l3))}

  def __call__(self, l4, skips, out_size):
    """l4 (B, h/2, w/2, oc3) + skips -> (B, *out_size, num_outputs)."""
    path = self.refinenet4(self.layer4_rn(l4), size=skips["skip3"].shape[1:3])
    path = self.refinenet3(path, skips["skip3"], size=skips["skip2"].shape[1:3])
    path = self.refinenet2(path, skips["skip2"], size=skips["skip1"].shape[1:3])
    path = self.refinenet1(path, skips["skip1"])
    out = geometry.resize_bilinear_align_corners(self.output_conv1(path), out_size)
    out = nn.relu(self.output_conv2_0(out))
    return self.output_conv2_2(out)


class SegmentationHead(nn.Module):
  """DPT head with a logit output, split as `prepare` (per image) + `finish` (per click)."""
  features: int = 64
  out_channels: tuple[int, ...] = (48, 96, 192, 384)
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    oc, d = self.out_channels, self.dtype
    self.projects_0 = dpt.conv(oc[0], 1, dtype=d)
    self.projects_1 = dpt.conv(oc[1], 1, dtype=d)
    self.projects_2 = dpt.conv(oc[2], 1, dtype=d)
    self.projects_3 = dpt.conv(oc[3], 1, dtype=d)
    self.resize_layers_0 = dpt.PatchUpsample(oc[0], 4, d)
    self.resize_layers_1 = dpt.PatchUpsample(oc[1], 2, d)
    self.resize_layers_3 = dpt.conv(oc[3], 3, stride=2, dtype=d)
    self.scratch = SplitScratch(self.features, 1, d)

  def prepare(self, f1, f2, f3):
    """Levels 1-3, each (B, h, w, D) -> dict of skip features (B, 4h|2h|h, ., F)."""
    d = self.dtype
    l1 = self.resize_layers_0(self.projects_0(f1.astype(d)))
    l2 = self.resize_layers_1(self.projects_1(f2.astype(d)))
    l3 = self.projects_2(f3.astype(d))
    return self.scratch.prepare(l1, l2, l3)

  def finish(self, f4, skips):
    """Level 4 (B, h, w, D) + skips -> logits (B, 14h, 14w, 1)."""
    h, w = f4.shape[1:3]
    l4 = self.resize_layers_3(self.projects_3(f4.astype(self.dtype)))
    return self.scratch(l4, skips, (14 * h, 14 * w))

  def __call__(self, features):
    """4 x (B, h, w, D) -> (B, 14h, 14w, 1) logits."""
    return self.finish(features[3], self.prepare(*features[:3]))
