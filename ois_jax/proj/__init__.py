"""Projects built on the library, one folder each (as big_vision's `proj/`): a recipe, its configs,
its experiments and its results page. The library (`ois_jax.models`, `training`, `evaluation`,
...) knows nothing of them."""
