"""The experiments behind the miniature's results page (README.md in the folder above); each runs
as `python -m ois_jax.proj.miniature.experiments.NAME` and prints JSON."""
