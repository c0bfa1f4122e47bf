"""tfds plumbing shared by all builders: array_record files, no TensorFlow, a per-folder cache.

Every builder reads a local folder (tfds `manual_dir`) and writes array_record shards into
`<cache>/<builder>-<hash of the folder's absolute path>/<builder>/<version>/`, with a digest of
the raw files beside it (a changed file, an added or a removed one triggers a new preparation).
Examples keep the
generation order (`disable_shuffling`, integer keys 0, 1, 2, ...), so record i is the i-th usable
sample, and the builder's `info.metadata` (metadata.json, written atomically with the shards)
carries what the loaders need without a pass over the data: skipped samples and an object index.
"""

import hashlib
import json
import os
import sys

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging

from ois_jax.errors import DataError
from ois_jax.data_pipelines.imaging import SkipSample

IMAGE_BYTES = tfds.features.Tensor(shape=(), dtype=np.object_)  # encoded file bytes, decoded by Pillow


def default_cache_dir():
  return os.environ.get("OIS_JAX_DATA_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "ois_jax", "tfds")


class _LocalDatasetInfo(tfds.core.DatasetInfo):
  """DatasetInfo of a local-only builder: nothing is looked up on the tfds bucket."""

  def initialize_from_bucket(self) -> None:
    # tfds makes a temporary folder before it asks the bucket, and leaves it behind: one empty
    # /tmp/tmp*tfds per builder of a not-yet-prepared dataset.
    return None


class FolderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base: subclasses define `features()`, LAYOUT, `find_samples(root, split)`, `make_example(name, item)`.

  `find_samples` lists the candidates as (name, item) pairs (cheap: file names only) and raises
  DataError when the folder has none; `make_example` reads one candidate and returns the example
  dict, or raises SkipSample(reason). Skips are collected per split into `info.metadata['skipped']`.
  """

  VERSION = tfds.core.Version("1.0.0")
  SPLITS = ("test",)
  LAYOUT = ""  # the expected folder layout, quoted in error messages
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Point data_dir at a local copy of the dataset (see docs/data.md)."

  @tfds.core.utils.classproperty
  @classmethod
  def url_infos(cls):
    # Nothing is downloaded; this also keeps tfds from resolving the package's resource path,
    # which fails when `data_pipelines` is imported as a namespace package.
    return None

  def features(self):
    raise NotImplementedError

  def _info(self):
    return _LocalDatasetInfo(
        builder=self, features=self.features(), disable_shuffling=True,
        metadata=tfds.core.MetadataDict(), description=self.__doc__)

  def find_samples(self, root, split):
    raise NotImplementedError

  def make_example(self, name, item):
    raise NotImplementedError

  def index_entry(self, example):
    """What the metadata keeps per record (object names, areas); pops helper keys off `example`."""
    return None

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    # Listing eagerly makes a missing or empty folder fail before anything is written.
    items = {split: self.find_samples(root, split) for split in self.splits_to_build()}
    return {split: self._generate_examples(items[split], split) for split in items}

  def splits_to_build(self):
    return self.SPLITS

  def _generate_examples(self, items, split):
    meta = self.info.metadata  # starts fresh: a rebuild must not append to the old lists
    skipped = meta.setdefault("skipped", {})[split] = []
    index = meta.setdefault("index", {})[split] = []
    key = 0
    for name, item in items:
      try:
        example = self.make_example(name, item)
      except SkipSample as e:
        skipped.append([name, str(e)])
        continue
      # Sub-sample skips (one bad object or human segmentation) ride along in the example.
      for sub_name, reason in example.pop("_skipped", ()):
        skipped.append([sub_name, reason])
      index.append(self.index_entry(example))
      yield key, example
      key += 1
    if key == 0:  # tfds cannot write an empty split; say why instead
      listed = "; ".join(f"{n}: {why}" for n, why in skipped[:5])
      raise DataError(f"{self.name}/{split}: no usable sample among {len(items)} candidates "
                      f"({len(skipped)} skipped: {listed})")


def dataset_root(builder_cls, manual_dir, cache_dir):
  """Cache folder for one builder and one raw folder (different copies never share a cache)."""
  real = os.path.realpath(os.path.expanduser(os.fspath(manual_dir)))
  digest = hashlib.sha1(real.encode("utf-8")).hexdigest()[:12]
  cache = os.path.expanduser(os.fspath(cache_dir)) if cache_dir else default_cache_dir()
  return os.path.join(cache, f"{builder_cls.__name__.lower()}-{digest}")


RAW_SIGNATURE_FILE = "raw_files.json"


def raw_signature(folder: str) -> str:
  """A digest of every file under `folder`: relative path, size and modification time."""
  entries = []
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    for name in sorted(files):
      path = os.path.join(root, name)
      try:
        st = os.stat(path)
      except OSError:
        continue
      entries.append(f"{os.path.relpath(path, folder)}\0{st.st_size}\0{st.st_mtime_ns}")
  return hashlib.sha1("\n".join(entries).encode("utf-8", "surrogateescape")).hexdigest()


def _stored_signature(root: str, key: str) -> str | None:
  try:
    with open(os.path.join(root, RAW_SIGNATURE_FILE)) as f:
      return json.load(f).get(key)
  except (OSError, ValueError, AttributeError):
    return None


def _store_signature(root: str, key: str, signature: str) -> None:
  path = os.path.join(root, RAW_SIGNATURE_FILE)
  try:
    with open(path) as f:
      stored = json.load(f)
  except (OSError, ValueError):
    stored = {}
  stored[key] = signature
  with open(path, "w") as f:
    json.dump(stored, f)


def _check_cache(cache_dir, write: bool) -> str:
  """DataError unless the data cache is a folder (or can be made one) and, with `write`, is
  writable; returns how the cache was given, for the messages."""
  given = ("--cache-dir" if cache_dir else "$OIS_JAX_DATA_CACHE" if os.environ.get("OIS_JAX_DATA_CACHE")
           else "the data cache")
  cache = os.path.abspath(os.path.expanduser(os.fspath(cache_dir or default_cache_dir())))
  existing = cache
  while not os.path.lexists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    where = "is a file" if existing == cache else f"is below the file {existing}"
    raise DataError(f"{given} {cache}: {where}; give a folder for the prepared datasets")
  if write and not os.access(existing, os.W_OK | os.X_OK):
    raise DataError(f"{given} {cache}: cannot write there (read-only or no permission), and the "
                    "dataset is not prepared yet; give a writable folder")
  return given


def prepare(builder_cls, manual_dir, cache_dir=None, config=None, rebuild=False):
  """Builds (once) and returns the builder; a second call with the same folder reuses the cache.

  The prepared copy is keyed on the raw files (names, sizes, modification times): when they
  changed since preparation, it is prepared again, and says so. With the raw folder gone (or empty), the
  prepared copy is used as it is.
  rebuild: prepare again even if a prepared copy exists.
  """
  manual_dir = os.path.realpath(os.path.expanduser(os.fspath(manual_dir)))
  cache_name = _check_cache(cache_dir, write=False)
  root = dataset_root(builder_cls, manual_dir, cache_dir)
  kwargs = dict(data_dir=root, file_format="array_record")
  if config is not None:
    kwargs["config"] = config
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)  # tfds warns that a not-yet-prepared folder is empty
  try:
    builder = builder_cls(**kwargs)
    prepared = builder.is_prepared()
  finally:
    absl_logging.set_verbosity(verbosity)
  key = str(config or "default")
  has_raw = os.path.isdir(manual_dir) and bool(os.listdir(manual_dir))
  signature = raw_signature(manual_dir) if has_raw else None  # None: nothing to compare with
  if prepared and not rebuild and signature is not None and signature != _stored_signature(root, key):
    print(f"{manual_dir}: the raw files changed since they were prepared; preparing them again",
          file=sys.stderr)
    rebuild = True
  if rebuild or not prepared:
    if not os.path.isdir(manual_dir):
      raise DataError(f"dataset folder {manual_dir} does not exist; expected layout: {builder_cls.LAYOUT}")
    if not os.listdir(manual_dir):  # tfds would fail with a bare AssertionError
      raise DataError(f"dataset folder {manual_dir} is empty; expected layout: {builder_cls.LAYOUT}")
    _check_cache(cache_dir, write=True)
    mode = tfds.download.GenerateMode.FORCE_REDOWNLOAD if rebuild else None
    try:
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir, **({"download_mode": mode} if mode else {})))
      _store_signature(root, key, signature)
    except Exception as e:
      from ois_jax import outputs
      failure = outputs.write_failure(e)
      if failure is None:
        raise
      raise DataError(f"{cache_name} {root}: cannot prepare the dataset there "
                      f"({failure.strerror or failure})") from None
  return builder


def require_files(found, folder, layout, what="images"):
  if not found:
    raise DataError(f"no {what} found in {folder}; expected layout: {layout}")
