"""`ModelFns`: the pure functions of a model that training, validation and evaluation call.

Training, the evaluator and the validator take one `ModelFns`, so a model other than OIS (a test's
stand-in, an ablation) plugs in everywhere at once.
"""

import dataclasses
from typing import Any, Callable

import jax


@dataclasses.dataclass(frozen=True)
class ModelFns:
  """The pure functions of a model that training, validation and evaluation call.

  `ois_fns()` gives the OIS model's (ois_jax.models.ois); tests pass a stand-in with the same
  attributes. `init_from_depth` is needed only when `model.depth_checkpoint` is set.
  """
  build_model: Callable[[Any], Any]                # config.model -> module
  init_params: Callable[[Any, jax.Array], Any]     # (model, rng) -> params
  trainable_mask: Callable[[Any], Any]             # params -> same tree of bools
  encode_image: Callable[..., Any]                 # (model, params, images, depth) -> image state
  decode: Callable[..., jax.Array]                 # (model, params, state, clicks, prev, has_prev) -> logits
  make_clicks: Callable[[jax.Array, jax.Array], Any]  # (coords (B, N, 2), valid (B, N)) -> clicks
  init_from_depth: Callable[[Any, Any], Any] | None = None  # (params, DAv2 params) -> params
  # encode_image = image_state(frozen_outputs(...)), split for train.cache_frozen_outputs:
  frozen_outputs: Callable[..., Any] | None = None  # (model, params, images, depth) -> frozen
  image_state: Callable[..., Any] | None = None     # (model, params, frozen) -> image state


def ois_fns() -> ModelFns:
  """The OIS model's functions."""
  from ois_jax.models import ois, prompts
  return ModelFns(build_model=ois.build_model, init_params=ois.init_params,
                  trainable_mask=ois.trainable_mask, encode_image=ois.encode_image, decode=ois.decode,
                  make_clicks=lambda coords, valid: prompts.Clicks(coords=coords, valid=valid),
                  init_from_depth=ois.init_from_depth, frozen_outputs=ois.frozen_outputs,
                  image_state=ois.image_state)
