"""ois-jax: Order-aware Interactive Segmentation (OIS) in JAX/Flax."""

__version__ = "0.1.0"


def __getattr__(name):
  # Lazy so that `import ois_jax` stays cheap for the CLI and converters.
  if name == "Predictor":
    from ois_jax.predictor import Predictor
    return Predictor
  raise AttributeError(f"module 'ois_jax' has no attribute {name!r}")
