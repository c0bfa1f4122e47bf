"""Random initialisation that compiles fast on CPU: one place for the trick the models share."""

import jax
import numpy as np


def rbg_init(module, rng: jax.Array, *inputs) -> dict:
  """`module.init(...)['params']`, drawn from an RngBitGenerator key derived from `rng`.

  Call it under jit. One threefry kernel per parameter makes XLA's CPU compile several times
  slower (tens of seconds even for tiny models); an RBG key draws them all cheaply. Values
  therefore depend on the key and the backend (CPU vs GPU).
  """
  seed = jax.random.randint(rng, (), 0, np.iinfo(np.int32).max)
  return module.init(jax.random.key(seed, impl="unsafe_rbg"), *inputs)["params"]
