"""A plain (MAE-style) ViT for the backbone ablation (paper Tables 10-11).

Pre-norm blocks without LayerScale, a learned position table at the model's own grid (no
interpolation), final LayerNorm applied to the four returned levels, class token dropped.
OUR CHOICE: patch size 14, so the DPT heads and the 14-px token grid of the prompt path are
unchanged (MAE's own ViT-B uses 16; its weights would need their patch embedding resampled).
A plain ViT has no depth decoder, so this backbone needs `depth_source="external"`.
"""

import flax.linen as nn
import jax.numpy as jnp

from ois_jax.geometry import PATCH_SIZE
from ois_jax.models import vit


class PlainViT(nn.Module):
  """(B, H, W, 3) normalised -> 4 x (B, H/14, W/14, D)."""
  embed_dim: int = 768
  depth: int = 12
  num_heads: int = 12
  intermediate_layers: tuple[int, ...] = (2, 5, 8, 11)
  dtype: jnp.dtype = jnp.float32
  attention: str = "auto"  # see vit.self_attention

  @nn.compact
  def __call__(self, images):
    b, h, w, _ = images.shape
    gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
    d = self.embed_dim
    cls_token = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, d))
    pos_embed = self.param("pos_embed", nn.initializers.normal(0.02), (1, 1 + gh * gw, d))
    x = vit.PatchEmbed(d, self.dtype, name="patch_embed")(images.astype(self.dtype))
    x = x.reshape(b, gh * gw, d).astype(jnp.float32)  # float32 residual stream (see vit.Block)
    x = jnp.concatenate([jnp.broadcast_to(cls_token.astype(x.dtype), (b, 1, d)), x], axis=1)
    x = x + pos_embed.astype(x.dtype)
    final_norm = nn.LayerNorm(vit.LAYER_NORM_EPS, dtype=self.dtype, name="norm")
    outputs = []
    for i in range(self.depth):
      x = vit.Block(self.num_heads, dtype=self.dtype, attention=self.attention, layer_scale=False,
                    name=f"blocks_{i}")(x)
      if i in self.intermediate_layers:
        outputs.append(final_norm(x)[:, 1:].reshape(b, gh, gw, d))
    return outputs
