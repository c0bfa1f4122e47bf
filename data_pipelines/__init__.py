"""Dataset builders (tfds, read from local folders) and training-input pipelines."""
