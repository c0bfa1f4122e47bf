"""The configs of the recipe in miniature (found by name by `ois_jax.config.load_config`)."""
