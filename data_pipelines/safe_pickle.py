"""Loading pickled annotation files without running code from them.

`pickle.load` runs whatever a file asks it to (a crafted `__reduce__` calls any function), so the
packed COCO+LVIS annotations are read with an unpickler that admits only the plain containers and
scalars of the builtins and the NumPy arrays and scalars the format uses; anything else is an
UnpicklingError naming the refused global.
"""

import pickle

ALLOWED = {
    "builtins": {"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str",
                 "bytes", "bytearray", "bool", "slice", "range"},
    "collections": {"OrderedDict"},
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
}


class RestrictedUnpickler(pickle.Unpickler):
  """An Unpickler whose `find_class` admits only ALLOWED (module, name) pairs."""

  def find_class(self, module, name):
    # NumPy 2 pickles dtypes as classes of numpy.dtypes (UInt8DType, ...).
    if name in ALLOWED.get(module, ()) or (module == "numpy.dtypes" and name.endswith("DType")):
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain containers, "
                                 "numbers, strings and NumPy arrays are allowed in annotation files")


def load(file) -> object:
  """`pickle.load` restricted to data (see the module docstring)."""
  return RestrictedUnpickler(file).load()
