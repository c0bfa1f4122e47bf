"""References beside the evaluator: the click loop run on the host, and the SAT latency function.

`host_loop` is the loop every interactive-segmentation paper runs: after each click, the next one
comes from the NumPy/SciPy oracle (`clicker.next_click`) on the host, one device round trip per
click. The jitted `ClickLoopRunner.run` must give the same clicks and IoUs (tests/evaluation), and
is measured against it (benchmarks/eval_speed.py). `make_sat_fn` times the "segment anything
task": one image, a grid of single-click prompts.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ois_jax import geometry
from ois_jax.evaluation import clicker, metrics, simulator
from ois_jax.evaluation.evaluator import ClickLoopRunner


def host_loop(runner: ClickLoopRunner, params, images, batch, max_clicks: int | None = None,
              depth=None) -> simulator.LoopOutput:
  """Reference loop: the same model and predictions, but the next click from the NumPy/SciPy
  oracle on the host after every click (one device round trip per click)."""
  max_clicks = runner.max_clicks if max_clicks is None else max_clicks
  from ois_jax.models.prompts import Clicks
  bsz, hc, wc = batch.gt.shape
  s = runner.input_size
  state = runner.encode(params, images, depth)
  gt = np.asarray(batch.gt)
  hw = [(int(v.any(1).sum()), int(v.any(0).sum())) for v in np.asarray(batch.valid)]
  scale = np.asarray(batch.scale)
  lists = [[] for _ in range(bsz)]
  clicked = [np.zeros(h_w, bool) for h_w in hw]
  preds = [np.zeros(h_w, bool) for h_w in hw]
  prev = jnp.zeros((bsz, s, s), jnp.float32)
  has_prev = jnp.zeros((bsz,), bool)
  out = np.zeros((4, bsz, max_clicks))
  for k in range(max_clicks):
    for b, (h, w) in enumerate(hw):
      if h == 0 or w == 0:  # a dummy row of a partial batch
        continue
      y, x, positive = clicker.next_click(gt[b, :h, :w], preds[b], clicked[b])
      clicked[b][y, x] = True
      n_sign = sum(1 for c in lists[b] if c[2] == positive)
      if n_sign < (runner.num_positive if positive else runner.num_negative):
        my, mx = geometry.to_model_coords(np.array([y, x], np.float32), np.float32(scale[b]))
        lists[b].append((my, mx, positive))
      out[1:, b, k] = (y, x, positive)
    clicks = Clicks.from_lists(lists, runner.num_positive, runner.num_negative)
    pred, prev = runner.predict(params, state, clicks, prev, has_prev, batch)
    has_prev = jnp.ones((bsz,), bool)
    pred = np.asarray(pred)
    for b, (h, w) in enumerate(hw):
      if h == 0 or w == 0:
        continue
      preds[b] = pred[b, :h, :w]
      out[0, b, k] = clicker.iou(gt[b, :h, :w], preds[b])
  return simulator.LoopOutput(out[0].astype(np.float32), out[1].astype(np.int32),
                              out[2].astype(np.int32), out[3].astype(bool))


def make_sat_fn(runner: ClickLoopRunner, params, image: np.ndarray, grid: int = 16,
                chunk: int | None = None) -> Callable[[], np.ndarray]:
  """SAT ("segment anything task") latency: one image, grid x grid single positive clicks.

  Returns a function that encodes the image once, decodes all grid**2 single-click prompts as
  batches of `chunk` (default: all at once), maps them back to the original resolution,
  thresholds them and blocks until the (grid**2, H, W) bool masks are ready.
  """
  from ois_jax import transforms
  from ois_jax.models.prompts import Clicks
  x, tf = transforms.preprocess(np.asarray(image), runner.input_size)
  mh, mw = (jnp.asarray(m, jnp.float32) for m in tf.resize_back_matrices())
  h, w = tf.orig_hw
  points = metrics.grid_clicks(h, w, grid)  # (P, 2) original (y, x)
  num = len(points)
  chunk = int(chunk or num)
  s = runner.input_size
  n_slots = runner.num_positive + runner.num_negative
  coords = tf.to_model_coords(points)

  def segment(params, x, coords):
    state = runner.encode_fn(runner.model, params, x[None])
    masks = []
    for start in range(0, num, chunk):  # static: a few chunks at most
      part = coords[start:start + chunk]
      b = part.shape[0]
      st = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (b,) + a.shape[1:]), state)
      slot_coords = jnp.zeros((b, n_slots, 2), jnp.float32).at[:, 0].set(part)
      valid = jnp.zeros((b, n_slots), bool).at[:, 0].set(True)
      logits = runner.decode_fn(runner.model, params, st, Clicks(slot_coords, valid),
                                jnp.zeros((b, s, s), jnp.float32), jnp.zeros((b,), bool))
      hp = jax.lax.Precision.HIGHEST
      orig = jnp.einsum("hs,bst,wt->bhw", mh, logits.astype(jnp.float32), mw, precision=hp)
      masks.append(jax.nn.sigmoid(orig) > runner.threshold)
    return jnp.concatenate(masks, axis=0)

  fn = jax.jit(segment)
  x = jnp.asarray(x, jnp.float32)
  coords = jnp.asarray(coords)
  return lambda: jax.block_until_ready(fn(params, x, coords))
