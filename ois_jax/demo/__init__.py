"""`ois-jax demo`: the interactive web demo (gradio, the `demo` extra).

- `engine`: the model side, no web framework: `Engine` (model, params, one jitted decode that
  returns the probabilities with the order maps' reference depths and the attention weights) and
  `Session` (one user's image, encoded once, clicks, masks, undo).
- `render`: the pictures (mask overlay with clicks, depth, order maps, attention).
- `app`: the gradio page (`Page(engine).build()`, `launch`), one state per browser session.
- `browser`: drives the page in headless Chromium (Playwright), for the browser test, the
  screenshot in docs/demo.png and the latency benchmark.
"""
