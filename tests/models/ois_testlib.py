"""Shared, process-cached tiny OIS model for the model tests (init compiles once per session).

Test files import it as `ois_testlib` (tests/conftest.py puts this folder on sys.path; tests run with
--import-mode=importlib), so every test file shares one cache. Ablated models reuse the full
model's parameters: their trees are subsets of it (checked by `params_for`), except the plain
ViT encoder, whose missing leaves are drawn from NumPy.
"""

import functools
import jax
import jax.numpy as jnp
import numpy as np

from ois_jax.configs import ois_tiny
from ois_jax.models import ois, prompts

def tiny_model_config(**overrides):
  cfg = ois_tiny.get_config().model
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


@functools.lru_cache(maxsize=None)
def full():
  model = ois.build_model(tiny_model_config())
  return model, ois.init_params(model, jax.random.key(0))


flatten = ois.flatten_params
param_shapes = ois.param_shapes


def params_for(model):
  """Params of `model` taken from the full tiny model's (NumPy random where absent there)."""
  _, full_params = full()
  flat_full = flatten(full_params)
  rng = np.random.default_rng(0)

  def pick(path, shape):
    key = "/".join(str(p.key) for p in path)
    if key in flat_full and flat_full[key].shape == shape.shape:
      return flat_full[key]
    return jnp.asarray(rng.normal(0, 0.02, shape.shape), shape.dtype)
  return jax.tree_util.tree_map_with_path(pick, param_shapes(model))


@functools.lru_cache(maxsize=None)
def fns(model):
  """Jitted (encode, decode) for a model (cached per model config)."""
  encode = jax.jit(lambda p, x, d=None: ois.encode_image(model, p, x, d))
  decode = jax.jit(lambda p, s, c, m, h: ois.decode(model, p, s, c, m, h))
  return encode, decode


def images(batch=2, size=112, seed=1):
  return jax.random.normal(jax.random.key(seed), (batch, size, size, 3), jnp.float32)


def clicks(lists):
  return prompts.Clicks.from_lists(lists)


def prev_mask(batch=2, size=112):
  """Left half foreground."""
  m = np.zeros((batch, size, size), np.float32)
  m[:, :, : size // 2] = 1.0
  return jnp.asarray(m)
