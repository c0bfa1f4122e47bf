"""The fingerprint experiment: equal on a rerun, and sensitive to what decides the weights."""

from ois_jax.proj.miniature.experiments.fingerprint import fingerprint

TINY = ["model.input_size=28", "data.batch_size=2"]


def test_a_rerun_gives_the_same_fingerprint_and_another_seed_does_not():
  first, again = fingerprint(2, TINY), fingerprint(2, TINY)
  assert first == again
  other = fingerprint(2, TINY + ["seed=1"])
  assert other["batches"] != first["batches"] and other["weights"] != first["weights"]
