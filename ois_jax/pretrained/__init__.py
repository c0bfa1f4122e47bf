"""Models that ship inside the package, by name: `Predictor.from_pretrained(name)`, `--model NAME`.

ois-tiny-procedural: the quickstart's tiny OIS model (fixed seed), trained on the procedural
  depth scenes on top of the quickstart's own small depth model. It is a model of the procedural
  world (textured shapes at distinct depths, 120x160), not of photographs: real images need real
  DepthAnythingV2 weights and real training data (see the README). `scripts/make_bundled_model.py`
  regenerates it; its `model_card.json` holds its measured held-out metrics.
"""

import json
import os

from ois_jax.errors import CheckpointError, ConfigError

MODELS = {
    "ois-tiny-procedural": "tiny OIS model of the procedural depth scenes (not of photographs)",
}
MODEL_CARD = "model_card.json"


def folder(name: str) -> str:
  """The checkpoint folder of bundled model `name` (ConfigError for an unknown name)."""
  if name not in MODELS:
    known = ", ".join(f"{n} ({what})" for n, what in MODELS.items())
    raise ConfigError(f"unknown model {name!r}; known models: {known}")
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
  if not os.path.isdir(path):
    raise CheckpointError(f"bundled model {name!r} is missing from this installation ({path}); "
                          "regenerate it with scripts/make_bundled_model.py")
  return path


def model_card(name: str) -> dict:
  """The bundled model's card: how it was made and its measured held-out metrics."""
  with open(os.path.join(folder(name), MODEL_CARD)) as f:
    return json.load(f)


def load(name: str):
  """`ois_jax.checkpoint.Weights` of bundled model `name` (float32, as `load_weights` gives)."""
  from ois_jax import checkpoint
  weights = checkpoint.load_weights(folder(name))
  return checkpoint.Weights(weights.params, weights.config, f"bundled model {name}")
