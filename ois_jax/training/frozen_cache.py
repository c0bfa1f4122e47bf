"""`train.cache_frozen_outputs`: the frozen encoder and depth head run once per training image.

The encoder and the depth head are frozen, so their outputs (`ModelFns.frozen_outputs`: the 4
encoder levels and the normalised depth) depend on the input image alone. Without augmentation
(`data.augment=False`) a scene's image is the same every epoch, so those outputs are computed the
first time an image is seen, kept on the host, and fed to the train step in place of the image
(`batch['frozen']`; the step then runs only `ModelFns.image_state` and the decoder): the same
loss and gradients, without the encoder's forward pass from the second epoch on.

Images are recognised by a hash of their bytes (and of the external depth map), so a cached entry
is only ever used for exactly the input it was computed from. Memory: one entry per distinct
image (logged once: 177 KiB at the quickstart's 112 px, 4 x (8, 8, 128) + (112, 112) float32).
Single process only; with augmentation every image is new and nothing could be reused, so both
are refused with a ConfigError.
"""

import hashlib

import jax
import numpy as np

from ois_jax.errors import ConfigError


def check_config(config, fns) -> None:
  """ConfigError when the cache is asked for but cannot give the same steps faster."""
  if config.data.get("augment", True):
    raise ConfigError("train.cache_frozen_outputs=True needs data.augment=False: augmented images "
                      "differ every step, so the frozen encoder's outputs cannot be reused (set "
                      "train.cache_frozen_outputs=False)")
  if jax.process_count() > 1:
    raise ConfigError("train.cache_frozen_outputs=True is single-process only "
                      f"({jax.process_count()} processes; set train.cache_frozen_outputs=False)")
  if getattr(fns, "frozen_outputs", None) is None or getattr(fns, "image_state", None) is None:
    raise ConfigError("train.cache_frozen_outputs=True: the model's functions have no "
                      "frozen_outputs / image_state split")


class FrozenOutputCache:
  """`cache(batch, params) -> batch` with 'frozen' in place of 'image' (and 'depth').

  batch: a host batch of `data_pipelines.training` ('image' (B, S, S, 3) float32, optional
  'depth' (B, S, S)); params: the current params (only the frozen leaves are read). A batch with
  any image not seen before runs the jitted `frozen_outputs` on the whole batch (one compile)
  and keeps the new rows. `stats`: {'frozen_hits', 'frozen_misses'} in images.
  """

  def __init__(self, model, config, fns, log=print):
    check_config(config, fns)
    self._log = log
    self._external = config.model.get("depth_source", "head") == "external"
    self._fn = jax.jit(lambda params, images, depth: fns.frozen_outputs(model, params, images, depth))
    self._rows = {}  # image hash -> pytree of numpy rows (no batch axis)
    self.stats = {"frozen_hits": 0, "frozen_misses": 0}

  def _key(self, batch, i) -> bytes:
    h = hashlib.blake2b(np.ascontiguousarray(batch["image"][i]).tobytes(), digest_size=16)
    if self._external:
      h.update(np.ascontiguousarray(batch["depth"][i]).tobytes())
    return h.digest()

  def __call__(self, batch: dict, params) -> dict:
    keys = [self._key(batch, i) for i in range(len(batch["image"]))]
    missing = [i for i, k in enumerate(keys) if k not in self._rows]
    self.stats["frozen_misses"] += len(missing)
    self.stats["frozen_hits"] += len(keys) - len(missing)
    if missing:
      out = jax.device_get(self._fn(params, batch["image"], batch.get("depth") if self._external
                                    else None))
      for i in missing:
        self._rows[keys[i]] = jax.tree.map(lambda x: x[i], out)
      if len(self._rows) == len(missing):  # the first batch
        size = sum(x.nbytes for x in jax.tree.leaves(self._rows[keys[0]]))
        self._log(f"train.cache_frozen_outputs: {size / 2**10:.0f} KiB of host memory per "
                  "distinct training image")
    frozen = jax.tree.map(lambda *rows: np.stack(rows), *[self._rows[k] for k in keys])
    out = {k: v for k, v in batch.items() if k not in ("image", "depth")}
    out["frozen"] = frozen
    return out
