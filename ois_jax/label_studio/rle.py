"""Label Studio's brush RLE: a mask as the byte list of a `brushlabels` region (`value.rle`).

The format is thi.ng's rle-pack over the mask's RGBA pixels, flattened row by row (H * W * 4
values, each 8 bits): a 32-bit value count, the word size minus one (5 bits), four run-length
field sizes minus one (4 bits each; here 3, 4, 8, 16), then chunks. A chunk is a repeat flag (1
bit), the index of its length field (2 bits), the chunk length minus one in that many bits, and
one value (a repeat) or that many values (literals). `encode` writes every chunk as a repeat,
vectorised in NumPy; `decode` reads both kinds. Label Studio's own decoder
(`label_studio_sdk.converter.brush.decode_rle`) reads what `encode` writes (tests/label_studio).
"""

import numpy as np

WORD_BITS = 8
RUN_FIELDS = (3, 4, 8, 16)  # bits of the chunk-length field, chosen by a 2-bit index
_MAX_RUN = 1 << RUN_FIELDS[-1]


def encode(mask: np.ndarray) -> list[int]:
  """(H, W) bool mask (or uint8 0 / 255) -> the RLE bytes of an RGBA brush image whose four
  channels are 255 inside the mask and 0 outside."""
  mask = np.asarray(mask)
  if mask.ndim != 2:
    raise ValueError(f"a brush mask is (H, W), got shape {mask.shape}")
  pixels = np.where(mask.astype(bool).ravel(), 255, 0).astype(np.int64)  # (H * W,)
  count = pixels.size * 4
  # Runs of equal pixels; each pixel is four equal values, so a run of n pixels is 4n values.
  if pixels.size:
    starts = np.flatnonzero(np.r_[True, pixels[1:] != pixels[:-1]])
    lengths = np.diff(np.r_[starts, pixels.size]) * 4
    values = pixels[starts]
  else:
    lengths = values = np.zeros(0, np.int64)
  # Runs longer than the largest length field are split into chunks of at most _MAX_RUN values.
  pieces = -(-lengths // _MAX_RUN)
  chunk_values = np.repeat(values, pieces)
  chunk_lengths = np.full(pieces.sum(), _MAX_RUN, np.int64)
  last = np.cumsum(pieces) - 1
  chunk_lengths[last] = lengths - (pieces - 1) * _MAX_RUN
  field = np.searchsorted(1 << np.asarray(RUN_FIELDS), chunk_lengths)  # smallest field that fits
  field_bits = np.asarray(RUN_FIELDS)[field]
  # Every chunk is four fields: flag 1, field index, length - 1, value.
  n = chunk_lengths.size
  numbers = np.stack([np.ones(n, np.int64), field, chunk_lengths - 1, chunk_values], 1).ravel()
  widths = np.stack([np.ones(n, np.int64), np.full(n, 2), field_bits, np.full(n, WORD_BITS)], 1).ravel()
  header_numbers = np.array([count, WORD_BITS - 1, *[b - 1 for b in RUN_FIELDS]], np.int64)
  header_widths = np.array([32, 5, 4, 4, 4, 4], np.int64)
  return _pack(np.r_[header_numbers, numbers], np.r_[header_widths, widths])


def _pack(numbers: np.ndarray, widths: np.ndarray) -> list[int]:
  """Unsigned numbers written big-endian in the given bit widths, one after another, padded
  with zero bits to whole bytes."""
  owner = np.repeat(np.arange(numbers.size), widths)  # (total bits,) the number each bit is of
  first = np.cumsum(widths) - widths
  shift = widths[owner] - 1 - (np.arange(owner.size) - first[owner])
  bits = ((numbers[owner] >> shift) & 1).astype(np.uint8)
  return np.packbits(bits).tolist()


def decode(rle, shape: tuple[int, int]) -> np.ndarray:
  """RLE bytes -> the (H, W) bool mask of their alpha channel (any chunk kinds, any sizes)."""
  bits = np.unpackbits(np.asarray(list(rle), np.uint8))
  reader = _Bits(bits)
  count = reader.read(32)
  word = reader.read(5) + 1
  fields = [reader.read(4) + 1 for _ in range(4)]
  h, w = shape
  if count != h * w * 4:
    raise ValueError(f"the RLE holds {count} values, a {h}x{w} RGBA image has {h * w * 4}")
  out = np.zeros(count, np.uint32)
  i = 0
  while i < count:
    repeat = reader.read(1)
    j = i + 1 + reader.read(fields[reader.read(2)])
    if j > count:
      raise ValueError(f"an RLE chunk runs past the end ({j} > {count} values)")
    if repeat:
      out[i:j] = reader.read(word)
    else:
      for k in range(i, j):
        out[k] = reader.read(word)
    i = j
  return out.reshape(h, w, 4)[..., 3] > 0


class _Bits:
  def __init__(self, bits: np.ndarray):
    self.bits, self.at = bits, 0

  def read(self, n: int) -> int:
    if self.at + n > self.bits.size:
      raise ValueError("the RLE ends in the middle of a chunk")
    value = 0
    for bit in self.bits[self.at:self.at + n]:
      value = (value << 1) | int(bit)
    self.at += n
    return value
