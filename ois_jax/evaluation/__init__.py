"""The standard click-loop evaluation: oracle clicker, JAX simulator, metrics, evaluator, reports."""

from ois_jax.evaluation.clicker import next_click
from ois_jax.evaluation.evaluator import EvalResult, evaluate

__all__ = ["next_click", "evaluate", "EvalResult"]
