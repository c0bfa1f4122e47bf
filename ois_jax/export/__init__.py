"""Deployment: OIS and DepthAnythingV2 checkpoints exported to ONNX or to jax.export.

    ois-jax export --checkpoint CKPT --format onnx --out DIR       (or --format jax)

An export folder holds the model's own split as two artifacts, the image encoder (normalised
image -> per-image state) and the click decoder (state + clicks + previous mask -> logits), or
for a DepthAnythingV2 checkpoint one `depth` artifact, plus `manifest.json`: the input and output
names, shapes (dynamic batch) and dtypes, the pre- and post-processing, the click slot layout,
the threshold, the source checkpoint's config and the check against JAX (see `manifest`,
`exporter`). ONNX files go through jax2onnx (`onnx_backend`); jax.export artifacts are
serialised StableHLO for cpu, cuda and tpu at once, with the weights in params.npz
(`jax_backend`), and run without the model code (`jax_runtime`). `examples/onnx_segment.py`
segments an image with onnxruntime, NumPy and Pillow only. docs/deploy.md has the details.

Submodules are imported on use: `jax_runtime` must load without Flax or the model code.
"""
