"""The DepthAnythingV2 DPT head.

Parameter names follow the checkpoint keys (`depth_head.scratch.refinenet1.resConfUnit1.conv1`
-> `scratch/refinenet1/resConfUnit1/conv1`). All fusion upsampling is bilinear with
align_corners=True, written out in `ois_jax.geometry` because jax.image.resize lacks it.
"""

import flax.linen as nn
import jax.numpy as jnp

from ois_jax import geometry

HEAD_SIZES = {  # variant -> (features, out_channels), as in DAv2's model_configs.
    "vits": (64, (48, 96, 192, 384)),
    "vitb": (128, (96, 192, 384, 768)),
    "vitl": (256, (256, 512, 1024, 1024)),
}


class PatchUpsample(nn.Module):
  """ConvTranspose2d with kernel_size == stride (non-overlapping). (B, h, w, C) -> (B, h*k, w*k, C').

  The kernel is stored as (k, k, C_in, C_out), i.e. torch's (C_in, C_out, k, k) permuted.
  """
  features: int
  factor: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.factor
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    b, h, w, _ = x.shape
    y = jnp.einsum("bhwi,acio->bhawco", x, kernel.astype(self.dtype))
    return y.reshape(b, h * k, w * k, self.features) + bias.astype(self.dtype)


def conv(features, kernel, stride=1, bias=True, dtype=jnp.float32, name=None):
  """PyTorch-style conv with symmetric padding kernel // 2."""
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)),
                 use_bias=bias, dtype=dtype, name=name)


class ResidualConvUnit(nn.Module):
  """Pre-activation residual unit: x + conv2(relu(conv1(relu(x))))."""
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    f = x.shape[-1]
    out = conv(f, 3, dtype=self.dtype, name="conv1")(nn.relu(x))
    out = conv(f, 3, dtype=self.dtype, name="conv2")(nn.relu(out))
    return out + x


class FeatureFusionBlock(nn.Module):
  """Adds the skip (through resConfUnit1), refines, upsamples (align-corners), 1x1 out_conv."""
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, skip=None, size=None):
    """x, skip: (B, h, w, F); size: output (H, W), default 2x."""
    skip_unit = ResidualConvUnit(self.dtype, name="resConfUnit1")
    if skip is not None:
      x = x + skip_unit(skip)
    elif self.is_initializing():
      # refinenet4 stores this unit in every checkpoint but never calls it; create its
      # parameters anyway so that converted checkpoints round-trip bit-exactly.
      skip_unit(x)
    x = ResidualConvUnit(self.dtype, name="resConfUnit2")(x)
    size = size or (2 * x.shape[1], 2 * x.shape[2])
    x = geometry.resize_bilinear_align_corners(x, size)
    return conv(x.shape[-1], 1, dtype=self.dtype, name="out_conv")(x)


class Scratch(nn.Module):
  """DPT's `scratch`: layerN_rn, refinenets, output convs."""
  features: int
  num_outputs: int = 1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, layers, out_size):
    """Returns the (B, H, W, num_outputs) output and refinenet1's (B, 8h, 8w, F) path."""
    l1, l2, l3, l4 = [conv(self.features, 3, bias=False, dtype=self.dtype, name=f"layer{i + 1}_rn")(x)
                      for i, x in enumerate(layers)]
    fusion = lambda i: FeatureFusionBlock(self.dtype, name=f"refinenet{i}")
    path = fusion(4)(l4, size=l3.shape[1:3])
    path = fusion(3)(path, l3, size=l2.shape[1:3])
    path = fusion(2)(path, l2, size=l1.shape[1:3])
    path = fusion(1)(path, l1)
    out = conv(self.features // 2, 3, dtype=self.dtype, name="output_conv1")(path)
    out = geometry.resize_bilinear_align_corners(out, out_size)
    out = nn.relu(conv(32, 3, dtype=self.dtype, name="output_conv2_0")(out))
    # The output layer runs in float32 whatever the compute dtype (the depth / the logits).
    out = conv(self.num_outputs, 1, dtype=jnp.float32, name="output_conv2_2")(out)
    return out, path


class DPTHead(nn.Module):
  """DAv2 DPT head. Four (B, h, w, D) token grids -> (B, 14h, 14w, num_outputs).

  The depth head ends in ReLU (`final_relu=True`, inverse relative depth); the OIS
  segmentation head uses the same layers with a raw logit output.
  """
  features: int = 64
  out_channels: tuple[int, ...] = (48, 96, 192, 384)
  num_outputs: int = 1
  final_relu: bool = True
  dtype: jnp.dtype = jnp.float32

  @classmethod
  def from_variant(cls, variant: str, **kwargs) -> "DPTHead":
    features, out_channels = HEAD_SIZES[variant]
    return cls(features, out_channels, **kwargs)

  @nn.compact
  def __call__(self, features: list[jnp.ndarray], return_path: bool = False):
    """features: 4 x (B, h, w, D). Returns (B, 14h, 14w, num_outputs) [, finest fused path]."""
    oc = self.out_channels
    h, w = features[0].shape[1:3]
    layers = []
    for i, x in enumerate(features):
      x = conv(oc[i], 1, dtype=self.dtype, name=f"projects_{i}")(x.astype(self.dtype))
      if i == 0:
        x = PatchUpsample(oc[0], 4, self.dtype, name="resize_layers_0")(x)
      elif i == 1:
        x = PatchUpsample(oc[1], 2, self.dtype, name="resize_layers_1")(x)
      elif i == 3:  # resize_layers_2 is the identity.
        x = conv(oc[3], 3, stride=2, dtype=self.dtype, name="resize_layers_3")(x)
      layers.append(x)
    out, path = Scratch(self.features, self.num_outputs, self.dtype, name="scratch")(
        layers, (14 * h, 14 * w))
    if self.final_relu:
      out = nn.relu(out)
    return (out, path) if return_path else out
