"""Graphs -> ONNX files through jax2onnx, and running them with onnxruntime.

The parameters are baked into each file as initializers. The ViT self-attention is traced with
the plain formula (`model.attention = "xla"`, see ATTENTION): the CPU-blocked form loops with
lax.map, which ONNX cannot express with a dynamic batch. A file over protobuf's 2 GiB limit keeps its weights in
a `.data` file beside it (ONNX's external data), which the manifest lists too.
"""

import functools
import os

import numpy as np

from ois_jax import _logging
from ois_jax.errors import ExportError
from ois_jax.export import manifest as mf
from ois_jax.export.graphs import Graph

OPSET = 23
ATTENTION = "xla"  # the encoder's self-attention in exported graphs (exporter.Source.graphs_for)
_PROTOBUF_LIMIT = 2 << 30


def versions() -> dict:
  import jax2onnx
  import onnx
  import onnxruntime
  return {"jax2onnx": _version("jax2onnx", jax2onnx), "onnx": onnx.__version__,
          "onnxruntime": onnxruntime.__version__, "opset": OPSET}


def _version(dist: str, module) -> str:
  from importlib.metadata import PackageNotFoundError, version
  try:
    return version(dist)
  except PackageNotFoundError:
    return getattr(module, "__version__", "unknown")


def require() -> None:
  """Raise ExportError naming the missing packages of the ONNX export."""
  missing = []
  for name in ("jax2onnx", "onnx", "onnxruntime"):
    try:
      __import__(name)
    except ImportError:
      missing.append(name)
  if missing:
    raise ExportError(f"the ONNX export needs {', '.join(missing)}: pip install 'ois-jax[export]'")


def _quiet_converter():
  """jax2onnx's IR library warns once per untyped shape constant; those are harmless."""
  return _logging.quieted("onnx_ir")


def export(graph: Graph, params: dict, directory: str) -> dict:
  """Write `graph` as DIRECTORY/NAME.onnx; returns its manifest artifact entry."""
  import jax
  import onnx
  from jax import export as jax_export
  from jax2onnx import to_onnx

  batch, = jax_export.symbolic_shape(mf.BATCH_DIM)
  with _quiet_converter():
    proto = to_onnx(functools.partial(graph.fn, jax.tree.map(np.asarray, params)),
                    graph.input_structs(batch), model_name=f"ois_jax_{graph.name}", opset=OPSET,
                    input_names=[t["name"] for t in graph.inputs],
                    output_names=[t["name"] for t in graph.outputs])
  path = os.path.join(directory, f"{graph.name}.onnx")
  entry = {"file": os.path.basename(path)}
  if proto.ByteSize() < _PROTOBUF_LIMIT:
    onnx.save_model(proto, path)
  else:
    data = entry["external_data"] = f"{graph.name}.onnx.data"
    onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data)
    entry["external_data_sha256"] = mf.sha256(os.path.join(directory, data))
  entry.update(sha256=mf.sha256(path), inputs=list(graph.inputs), outputs=list(graph.outputs))
  return entry


class Session:
  """An onnxruntime session of one artifact, checked against its manifest entry."""

  def __init__(self, directory: str, name: str, entry: dict, threads: int | None = None):
    import onnxruntime as ort
    path = mf.check_file(directory, entry, f"{name} artifact")
    if "external_data" in entry:
      mf.check_file(directory, {"file": entry["external_data"], "sha256": entry["external_data_sha256"]},
                    f"{name} weights")
    options = ort.SessionOptions()
    if threads:
      options.intra_op_num_threads = threads
    try:
      self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
      raise ExportError(f"{path}: onnxruntime cannot load it ({type(e).__name__}: {e})") from None
    mf.check_signature(f"{path}", entry["inputs"], _tensors(self.session.get_inputs()))
    mf.check_signature(f"{path}", entry["outputs"], _tensors(self.session.get_outputs()))
    self.inputs = [t["name"] for t in entry["inputs"]]
    self.outputs = [t["name"] for t in entry["outputs"]]

  def __call__(self, *args) -> list[np.ndarray]:
    return self.session.run(self.outputs, dict(zip(self.inputs, args)))


_ORT_DTYPES = {"tensor(float)": "float32", "tensor(bool)": "bool", "tensor(int32)": "int32",
               "tensor(int64)": "int64", "tensor(double)": "float64"}


def _tensors(values) -> list[dict]:
  """onnxruntime's NodeArg list -> TENSOR entries (the symbolic batch keeps its name)."""
  return [{"name": v.name, "shape": list(v.shape), "dtype": _ORT_DTYPES.get(v.type, v.type)}
          for v in values]
