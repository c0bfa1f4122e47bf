"""Validation during training is the one evaluator (`Evaluator`, cached batches) on held-out samples."""

import jax
import numpy as np

from ois_jax.evaluation import evaluate
from ois_jax.training import validation


def test_validator_matches_evaluate(standin):
  from ois_jax.data_pipelines import procedural
  cfg = standin.config(size=32)
  cfg.eval.max_clicks, cfg.eval.batch_size = 4, 2
  scenes = procedural.ProceduralScenes(num_scenes=3, seed=0, split="val", size=(40, 56), min_area=40)
  samples = [procedural.ProceduralEvalSource(scenes)[i] for i in range(3)]
  model = standin.FNS.build_model(cfg.model)
  params = standin.FNS.init_params(model, jax.random.key(0))
  validator = validation.make_validator(cfg, model, standin.FNS, samples)
  ours = validator.run(params).ious
  ref = evaluate(model, params, cfg, samples, progress=False, fns=standin.FNS)
  assert ours.shape == (3, 4)
  np.testing.assert_allclose(ours, ref.ious, atol=1e-6)
  metrics = validator(params)
  assert 1 <= metrics["NoC90"] <= 4 and 0 <= metrics["mIoU@4"] <= 1
  # The second run reuses the prepared batches and gives the same curves.
  np.testing.assert_array_equal(validator.run(params).ious, ours)
