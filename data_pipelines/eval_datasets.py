"""Evaluation samples: `load(name, data_dir) -> EvalDataset`, one sample per object.

    ds = load("grabcut", "/data/GrabCut")
    len(ds); ds.source[0]  # {'image': uint8 (H, W, 3), 'gt': int8 (H, W) 1/0/-1, 'name': str}
    ds.skipped             # [(name, reason), ...] files left out at preparation

`source` is a random-access source (len / getitem) usable directly or through
`grain.MapDataset.source(ds.source)`; images are decoded with Pillow on access.

`load("procedural", config=config)` is the held-out split of the procedural depth scenes
(generated, no folder): its samples also carry their true 'depth' (H, W), so models with
`depth_source='external'` can be evaluated on it.
"""

import dataclasses

import numpy as np

from ois_jax.errors import DataError
from ois_jax.data_pipelines import eval_builders, imaging, tfds_base

PROCEDURAL = "procedural"
NAMES = tuple(eval_builders.BUILDERS) + (PROCEDURAL,)


class EvalSource:
  """Random access over objects: index i -> (record, object) of the tfds array_record source."""

  def __init__(self, records, objects):
    self._records = records            # tfds ArrayRecordDataSource, one record per image
    self._objects = objects            # [(record index, object index, name)]

  def __len__(self):
    return len(self._objects)

  def __getitem__(self, index):
    if not -len(self) <= index < len(self):
      raise IndexError(f"sample index {index} out of range for {len(self)} samples")
    record_index, object_index, name = self._objects[index]
    record = self._records[record_index]
    try:
      image = imaging.decode_image_bytes(record["image"])
    except imaging.SkipSample as e:  # validated at preparation, so only a damaged cache gets here
      raise DataError(f"sample {name}: {e}; delete the prepared cache to rebuild it") from None
    gt = np.ascontiguousarray(record["masks"][object_index]).view(np.int8)  # 255 -> -1 (ignore)
    return {"image": image, "gt": gt, "name": name}

  def __repr__(self):
    return f"EvalSource({len(self)} objects)"


@dataclasses.dataclass
class EvalDataset:
  name: str
  source: EvalSource
  skipped: list        # [(name, reason)]
  prepared_dir: str    # where the array_record files live ("" for generated data)
  has_depth: bool = False  # samples carry 'depth' (H, W)

  def __len__(self):
    return len(self.source)


def load_procedural(config, num_scenes: int | None = None) -> EvalDataset:
  """The held-out ('val') procedural scenes of `config.data` (seed, size), one object each.

  num_scenes: default `config.data.procedural_num_val`.
  """
  from ois_jax.data_pipelines import procedural
  d = config.data
  scenes = procedural.scenes_from_config(d, "val", num_scenes or d.procedural_num_val)
  return EvalDataset(name=PROCEDURAL, source=procedural.ProceduralEvalSource(scenes), skipped=[],
                     prepared_dir="", has_depth=True)


def load(name, data_dir=None, cache_dir=None, rebuild=False, config=None, num_scenes=None):
  """Prepares (first call only; progress bars) and opens benchmark `name` read from `data_dir`.

  name: grabcut | berkeley | davis345 | coco_mval | pascalvoc | hqseg44k, or procedural
    (generated from `config.data`; no data_dir).
  cache_dir: defaults to $OIS_JAX_DATA_CACHE or ~/.cache/ois_jax/tfds.
  rebuild: prepare again although a prepared copy exists (the raw files changed).
  """
  if name == PROCEDURAL:
    if config is None:
      raise DataError("the procedural dataset is generated from a config: pass config=")
    return load_procedural(config, num_scenes)
  if name not in eval_builders.BUILDERS:
    raise DataError(f'unknown evaluation dataset {name!r}; choose one of {", ".join(NAMES)}')
  if not data_dir:
    raise DataError(f"{name}: give the dataset's folder (--data-dir)")
  builder = tfds_base.prepare(eval_builders.BUILDERS[name], data_dir, cache_dir, rebuild=rebuild)
  split = builder.SPLITS[0]
  meta = builder.info.metadata
  skipped = [tuple(s) for s in meta["skipped"].get(split, [])]
  objects = [(r, k, object_name) for r, names in enumerate(meta["index"].get(split, []))
             for k, object_name in enumerate(names)]
  if not objects:
    listed = "; ".join(f"{n}: {why}" for n, why in skipped[:5])
    raise DataError(f"{name}: no usable sample in {data_dir} ({len(skipped)} skipped: {listed})")
  source = EvalSource(builder.as_data_source(split), objects)
  return EvalDataset(name=name, source=source, skipped=skipped, prepared_dir=str(builder.data_dir))
