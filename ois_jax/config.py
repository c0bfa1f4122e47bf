"""Loading run configs: one loader for every command and script.

A config is an ml_collections ConfigDict from a Python file's `get_config()` (the files in
`configs/`, installed as `ois_jax.configs`). `load_config(spec, overrides)` accepts

  configs/ois_tiny.py            a file path
  configs/ois_ablation.py:no_order,tiny   a file path with the argument of get_config(arg)
  ois_tiny, ois_jax.configs.ois_tiny       a module name (the installed configs, and the
                                           projects' configs, e.g. ois_tiny_procedural)

and `KEY.SUB=VALUE` overrides (values parsed as Python literals, kept as strings for string keys,
cast to the key's type otherwise). Every key must exist in the schema, `configs/common.py`'s
`base_config()`: an unknown key, in a file or an override, is a ConfigError naming the closest
known key, so a typo such as `model.use_odrer=False` never passes silently.
"""

import ast
import difflib
import importlib
import importlib.util
import os
from typing import Any, Iterable

import ml_collections

from ois_jax.errors import ConfigError, first_line

PACKAGE = "ois_jax.configs"
# Projects' configs (ois_jax/proj/*/configs) are found by name as well.
PROJECT_PACKAGES = ("ois_jax.proj.miniature.configs",)


def schema() -> ml_collections.ConfigDict:
  """Every known key with its default (configs/common.py)."""
  from ois_jax.configs import common
  return common.base_config()


def flat_keys(config: Any, prefix: str = "") -> dict[str, Any]:
  """{'model.use_order': True, ...} for a ConfigDict or nested dict."""
  out = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      out.update(flat_keys(value, f"{name}."))
    else:
      out[name] = value
  return out


def _unknown_key_error(keys: Iterable[str], known: Iterable[str], where: str) -> ConfigError:
  known = list(known)
  hints = []
  for key in keys:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hints.append(key + (f" (did you mean {close[0]}?)" if close else ""))
  return ConfigError(f"{where}: no such config key {', '.join(hints)}")


def check_keys(config: Any, where: str = "config", reference=None) -> None:
  """ConfigError unless every key of `config` exists in the schema (`reference`: another one)."""
  known = flat_keys(schema() if reference is None else reference)
  sections = {k.rsplit(".", 1)[0] for k in known if "." in k}
  unknown = [k for k in flat_keys(config) if k not in known and k not in sections]
  if unknown:
    raise _unknown_key_error(sorted(unknown), known, where)


def _module_for(spec: str):
  """The config module of a file path or a module name."""
  if os.path.isfile(spec):
    if not spec.endswith(".py"):
      raise ConfigError(f"--config {spec}: not a Python config file (a .py file with get_config())")
    name = "_ois_config_" + os.path.splitext(os.path.basename(spec))[0]
    module_spec = importlib.util.spec_from_file_location(name, spec)
    module = importlib.util.module_from_spec(module_spec)
    try:
      module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - a broken config file is a user error
      raise ConfigError(f"--config {spec}: cannot load ({type(e).__name__}: "
                        f"{first_line(e)})") from None
    return module
  # Not a file here: an installed config by name (configs/ois_tiny.py works outside the repo too).
  name = os.path.splitext(os.path.basename(spec))[0] if spec.endswith(".py") else spec
  for package in (PACKAGE,) + PROJECT_PACKAGES:
    name = name.removeprefix(f"{package}.")
  name = name.removeprefix("configs.")
  if name in available():
    for package in (PACKAGE,) + PROJECT_PACKAGES:
      try:
        return importlib.import_module(f"{package}.{name}")
      except ModuleNotFoundError:
        continue
  raise ConfigError(f"--config {spec}: no such config file or module; installed configs: "
                    f"{', '.join(available())}")


def available() -> list[str]:
  """Names of the installed config modules (ois_tiny, ois_vitb_1024, ...)."""
  names = []
  for package in (PACKAGE,) + PROJECT_PACKAGES:
    folder = os.path.dirname(importlib.import_module(package).__file__)
    names += [f[:-3] for f in os.listdir(folder)
              if f.endswith(".py") and not f.startswith("_") and f != "common.py"]
  return sorted(names)


def load_config(spec: str, overrides: Iterable[str] = ()) -> ml_collections.ConfigDict:
  """The config of `spec` (a path, `path.py:arg` or a module name) with `overrides` applied."""
  if not spec:
    raise ConfigError("--config is required (e.g. --config configs/ois_tiny.py)")
  if not isinstance(spec, (str, os.PathLike)):
    raise ConfigError(f"--config must be a file path or a config name, got {type(spec).__name__}")
  path, sep, arg = os.fspath(spec).partition(":")
  module = _module_for(path)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"--config {spec}: has no get_config()")
  try:
    config = module.get_config(arg) if sep else module.get_config()
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError(f"--config {spec}: {e}") from None
  if isinstance(config, dict):
    config = ml_collections.ConfigDict(config)
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"--config {spec}: get_config() returned {type(config).__name__}, not a "
                      "ConfigDict")
  # A config module that is not an OIS config (the miniature's stage 1) declares its own schema().
  reference = module.schema() if callable(getattr(module, "schema", None)) else schema()
  check_keys(config, f"--config {spec}", reference)
  check_types(config, f"--config {spec}", reference)
  return apply_overrides(config, overrides, reference)


def _kind(value) -> str | None:
  """The schema type a value must match: 'bool', 'int', 'float', 'str', 'sequence' (None: any)."""
  if isinstance(value, bool):
    return "bool"
  if isinstance(value, int):
    return "int"
  if isinstance(value, float):
    return "float"
  if isinstance(value, str):
    return "str"
  if isinstance(value, (list, tuple)):
    return "sequence"
  return None


def type_problems(config: Any, reference=None) -> list[str]:
  """'model.input_size: 'abc' where the schema has an int' for every value of `config` (a
  ConfigDict or a nested dict, e.g. a checkpoint's metadata) whose type differs from the
  schema's default (`reference`: another schema); an int is a float too, and None is allowed
  where the default is None."""
  defaults = flat_keys(schema() if reference is None else reference)
  problems = []
  for key, value in flat_keys(config).items():
    if key not in defaults or value is None:
      continue
    want, got = _kind(defaults[key]), _kind(value)
    if want is None or got == want or (want == "float" and got == "int"):
      continue
    problems.append(f"{key}: {value!r} where the schema has a {want} (e.g. {defaults[key]!r})")
  return problems


def check_types(config: Any, where: str = "config", reference=None) -> None:
  """ConfigError naming every value whose type differs from the schema's (`type_problems`)."""
  problems = type_problems(config, reference)
  if problems:
    raise ConfigError(f"{where}: {'; '.join(problems[:5])}")


def parse_value(text: str, current: Any) -> Any:
  """An override's value for a key whose current value is `current`."""
  if isinstance(current, str):
    try:  # a quoted string literal; anything else is taken as written
      value = ast.literal_eval(text)
      return value if isinstance(value, str) else text
    except (ValueError, SyntaxError):
      return text
  if isinstance(current, bool) and text.lower() in ("true", "false"):
    return text.lower() == "true"
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[str] = (), reference=None):
  """Sets `KEY.SUB=VALUE` items on `config` in place; returns it. An unknown key is refused with
  the closest keys of the schema (`reference`: another schema)."""
  known = flat_keys(schema() if reference is None else reference)
  if isinstance(overrides, str):
    raise ConfigError(f"overrides must be a list of 'key=value' strings, got the string {overrides!r}")
  for item in overrides:
    if not isinstance(item, str):
      raise ConfigError(f"override {item!r}: expected a 'key=value' string")
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
      raise ConfigError(f"override {item!r}: expected key=value (e.g. model.use_order=False)")
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node.get(p) if isinstance(node, (dict, ml_collections.ConfigDict)) else None
    if not isinstance(node, (dict, ml_collections.ConfigDict)) or leaf not in node:
      raise _unknown_key_error([key], known, f"override {item!r}")
    current = node[leaf]
    value = parse_value(text, current)
    if isinstance(current, tuple) and isinstance(value, list):
      value = tuple(value)
    try:
      node[leaf] = value
    except TypeError:
      raise ConfigError(f"override {item!r}: {key} must be of type {type(current).__name__} "
                        f"(now {current!r}), got {text!r}") from None
  return config


OVERRIDE_FLAG = "--config."


def split_overrides(argv: Iterable[str], flags: Iterable[str] = (OVERRIDE_FLAG,)):
  """The command line's config overrides, the one spelling every command and script takes:
  `--config.KEY=VALUE` (or `--config.KEY VALUE`), as ml_collections' config flags spell them.
  A command with two configs names the second by its own prefix (`--depth-config.KEY=VALUE`).

  Returns (the other arguments, {flag: ['KEY=VALUE', ...]}) for argparse to parse the rest.
  """
  argv, flags = list(argv), tuple(flags)
  rest, found, i = [], {flag: [] for flag in flags}, 0
  while i < len(argv):
    arg = argv[i]
    flag = next((f for f in flags if arg.startswith(f)), None)
    if flag is None:
      rest.append(arg)
    elif "=" in arg:
      found[flag].append(arg[len(flag):])
    elif i + 1 < len(argv):
      found[flag].append(f"{arg[len(flag):]}={argv[i + 1]}")
      i += 1
    else:
      raise ConfigError(f"{arg}: an override needs a value ({flag}KEY=VALUE)")
    i += 1
  return rest, found


def parse_with_overrides(parser, argv: Iterable[str] | None = None):
  """`parser.parse_args` with the `--config.KEY=VALUE` overrides taken out first, into args.set
  (a list of 'KEY=VALUE'). argv defaults to the process's command line."""
  import sys
  rest, found = split_overrides(sys.argv[1:] if argv is None else argv)
  args = parser.parse_args(rest)
  args.set = found[OVERRIDE_FLAG]
  return args


def model_differences(a: Any, b: Any, ignore: Iterable[str] = ()) -> list[str]:
  """Keys of two `model` sections whose values differ ('input_size: 112 vs 518')."""
  fa, fb = flat_keys(a), flat_keys(b)
  defaults = flat_keys(schema().model)
  ignore = set(ignore)
  out = []
  for key in sorted(set(fa) | set(fb)):
    if key in ignore:
      continue
    va, vb = fa.get(key, defaults.get(key)), fb.get(key, defaults.get(key))
    norm = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v
    if norm(va) != norm(vb):
      out.append(f"{key}: {va!r} vs {vb!r}")
  return out
