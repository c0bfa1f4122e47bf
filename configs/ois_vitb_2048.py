"""The paper's second rows: the ViT-B OIS at 2048 input (2044 = 146 x 14, the patch multiple).

The image has T = 146^2 = 21,316 tokens. The plain attention formula would hold 12 heads x
21,317^2 float32 logits per layer, 22 GB; `model.attention = "auto"` keeps attention memory
bounded instead: cuDNN flash attention on NVIDIA GPUs in bfloat16 (O(T)), otherwise the blocked
loop (O(T x block), `ois_jax.models.vit.self_attention`). `benchmarks/attention_memory.py`
reports the compiled encoder's temporary memory for both.

The paper trains at 1024 and evaluates at 2048 with the same ViT-B; this config is for that
evaluation and for fine-tuning at 2048.
"""

from ois_jax.configs import ois_vitb_1024


def get_config():
  c = ois_vitb_1024.get_config()
  c.name = "ois_vitb_2048"
  c.model.input_size = 2044
  c.model.attention = "auto"  # bounded at this token count on every platform (see above)
  c.eval.batch_size = 1       # 4x the pixels of ois_vitb_1024 per image
  return c
