"""The functions an export holds, with named inputs and outputs and a dynamic batch.

OIS exports its own split (see ois_jax.models.ois):
  encoder  image (B, S, S, 3) float32 ImageNet-normalised [+ external_depth (B, S, S)]
           -> the per-image state: depth (B, S, S), features (B, T, C), level4 (B, g, g, D),
              skip1 (B, 4g, 4g, F), skip2 (B, 2g, 2g, F), skip3 (B, g, g, F)
  decoder  the state + click_coords (B, N, 2) float32 (y, x) model pixels, click_valid (B, N)
           bool, prev_mask (B, S, S) float32 probabilities in model space, has_prev (B,) bool
           -> logits (B, S, S) float32 in model space
A converted DepthAnythingV2 checkpoint exports one function at a fixed input size:
  depth    image (B, H, W, 3) float32 normalised -> depth (B, H, W) float32

Each `Graph.fn(params, *inputs)` returns a tuple in `outputs` order; `params` is the model's
parameter tree, closed over by the ONNX export and passed as arguments by jax.export.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from ois_jax.export import manifest as mf
from ois_jax.models import ois, prompts

STATE_KEYS = ("depth", "features", "level4", "skip1", "skip2", "skip3")


@dataclasses.dataclass(frozen=True)
class Graph:
  """One exported function. inputs/outputs: manifest TENSOR entries (batch first)."""
  name: str
  fn: Callable
  inputs: tuple[dict, ...]
  outputs: tuple[dict, ...]

  def input_structs(self, batch) -> list[jax.ShapeDtypeStruct]:
    """Abstract inputs with `batch` (an int or a symbolic dimension) as the leading size."""
    return [jax.ShapeDtypeStruct((batch, *t["shape"][1:]), jnp.dtype(t["dtype"])) for t in self.inputs]


def _outputs(fn, params, inputs, names) -> tuple[dict, ...]:
  shapes = jax.eval_shape(fn, params, *[jax.ShapeDtypeStruct((1, *t["shape"][1:]), jnp.dtype(t["dtype"]))
                                        for t in inputs])
  return tuple(mf.tensor(n, s.shape[1:], s.dtype) for n, s in zip(names, shapes))


def ois_graphs(model: ois.OIS, params: dict) -> tuple[Graph, Graph]:
  """(encoder, decoder) of an OIS model."""
  c = model.config
  s, external = c.input_size, c.depth_source == "external"
  enc_inputs = (mf.tensor("image", (s, s, 3), "float32"),)
  if external:
    enc_inputs += (mf.tensor("external_depth", (s, s), "float32"),)

  def encoder(params, image, external_depth=None):
    state = ois.encode_image(model, params, image, external_depth)
    return tuple(state[k] for k in STATE_KEYS)

  enc_outputs = _outputs(encoder, params, enc_inputs, STATE_KEYS)
  n = c.num_slots
  dec_inputs = enc_outputs + (mf.tensor("click_coords", (n, 2), "float32"),
                              mf.tensor("click_valid", (n,), "bool"),
                              mf.tensor("prev_mask", (s, s), "float32"),
                              mf.tensor("has_prev", (), "bool"))

  def decoder(params, *args):
    state = dict(zip(STATE_KEYS, args[:len(STATE_KEYS)]))
    coords, valid, prev_mask, has_prev = args[len(STATE_KEYS):]
    logits = ois.decode(model, params, state, prompts.Clicks(coords, valid), prev_mask, has_prev)
    return (logits,)

  dec_outputs = _outputs(decoder, params, dec_inputs, ("logits",))
  return (Graph("encoder", encoder, enc_inputs, enc_outputs),
          Graph("decoder", decoder, dec_inputs, dec_outputs))


def depth_graph(model, params: dict, input_hw: tuple[int, int]) -> Graph:
  """The DepthAnythingV2 forward at a fixed (H, W) (multiples of 14): image -> depth."""
  inputs = (mf.tensor("image", (*input_hw, 3), "float32"),)

  def depth(params, image):
    return (model.apply({"params": params}, image),)

  return Graph("depth", depth, inputs, _outputs(depth, params, inputs, ("depth",)))
