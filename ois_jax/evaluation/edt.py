"""Exact Euclidean distance transform in JAX (squared distances in int32, no approximation).

Separable, as Felzenszwalb & Huttenlocher and Meijster et al.: a column pass gives each pixel
the distance g to the nearest background pixel in its column, and the row pass is the min-plus
convolution D(y, x) = min_d g(y, x + d)^2 + d^2, done one of two exact ways:
- "offsets" (GPU/TPU default): loop over the offset d with whole-image steps, stopping once d^2
  exceeds the largest D found so far (no farther column can lower any pixel): O(H W R) for an
  inscribed radius R, in few, wide, fused steps.
- "envelope": Meijster's lower envelope of parabolas, all rows in lockstep: O(W) sequential steps
  on (rows,) vectors, O(H W) work.
Everything outside the array counts as background, so the result equals
`scipy.ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1] ** 2` exactly.

The click simulator needs only the largest distance and the first pixel that attains it, not the
whole map: `max_distance` finds both exactly with far less work on CPU (branch and bound over
4 x 4 blocks, see its docstring).
"""

import math

import jax
import jax.numpy as jnp

# Largest int32: the "no pixel" index in minimum reductions.
_NO_INDEX = 2 ** 31 - 1


def _on_cpu() -> bool:
  return jax.default_backend() == "cpu"


def _column_distance(mask: jax.Array, sequential: bool | None = None) -> jax.Array:
  """(..., H, W) bool -> (..., H, W) int32 distance to the nearest background pixel in each column.

  sequential: two `lax.scan`s over the rows with int16 run lengths (H < 32768), fastest on CPU;
  False: cumulative max/min over row indices (parallel, for GPU/TPU); None: by backend.
  """
  if sequential is None:
    sequential = _on_cpu()
  h = mask.shape[-2]
  if sequential:
    rows_first = jnp.moveaxis(mask, -2, 0)  # (H, ..., W): scan over rows

    def run(length, row):  # consecutive foreground pixels up to and including this row
      length = jnp.where(row, length + 1, 0).astype(jnp.int16)
      return length, length

    zero = jnp.zeros(rows_first.shape[1:], jnp.int16)
    _, down = jax.lax.scan(run, zero, rows_first)
    _, up = jax.lax.scan(run, zero, rows_first[::-1])
    # The virtual background rows -1 and H (zero padding) end every run.
    return jnp.moveaxis(jnp.minimum(down, up[::-1]), 0, -2).astype(jnp.int32)
  rows = jnp.arange(h, dtype=jnp.int32)[:, None]
  rows = jnp.broadcast_to(rows, mask.shape)
  # The virtual background rows -1 and H stand for the zero padding around the image.
  prev_bg = jnp.where(mask, jnp.int32(-1), rows)
  prev_bg = jax.lax.cummax(prev_bg, axis=mask.ndim - 2)
  next_bg = jnp.where(mask, jnp.int32(h), rows)
  next_bg = jax.lax.cummin(next_bg, axis=mask.ndim - 2, reverse=True)
  return jnp.minimum(rows - prev_bg, next_bg - rows)


def squared_edt(mask: jax.Array, method: str = "auto") -> jax.Array:
  """Exact squared Euclidean distance of every foreground pixel to the nearest background pixel.

  Args:
    mask: (..., H, W) bool, True = foreground. Pixels outside the array are background.
    method: "offsets" (GPU/TPU default), "envelope" (CPU default) or "auto" (by backend).
  Returns:
    (..., H, W) int32 squared distances (0 on background). Exact for H, W < 32768.
  """
  mask = jnp.asarray(mask, bool)
  g = _column_distance(mask)
  g2 = g * g  # (..., H, W); background rows give 0
  if method == "auto":
    method = "envelope" if jax.default_backend() == "cpu" else "offsets"
  if method == "envelope":
    return _row_pass_envelope(g2)
  if method != "offsets":
    raise ValueError(f"unknown EDT method {method!r}")
  return _row_pass_offsets(g2)


def _row_pass_offsets(g2: jax.Array, max_offset: int | None = None) -> jax.Array:
  """min_d g2[..., x + d] + d^2 by a loop over offsets d with whole-image steps.

  Columns beyond the border are the zero padding. With a static `max_offset` (valid when every
  result is below (max_offset + 1)^2) the loop is unrolled; otherwise it stops once d^2 reaches
  the largest value found so far.
  """
  w = g2.shape[-1]
  axis = g2.ndim - 1
  reach = w if max_offset is None else min(int(max_offset), w)
  padded = jnp.pad(g2, [(0, 0)] * axis + [(reach, reach)])  # zero = background columns

  def lower(best, d):
    right = jax.lax.dynamic_slice_in_dim(padded, reach + d, w, axis)  # g2[..., x + d]
    left = jax.lax.dynamic_slice_in_dim(padded, reach - d, w, axis)   # g2[..., x - d]
    return jnp.minimum(best, jnp.minimum(right, left) + d * d)

  if max_offset is not None:
    best = g2
    for d in range(1, reach + 1):  # static slices fuse into one pass
      best = lower(best, d)
    return best

  def cond(state):
    d, best = state
    # d^2 >= every current D: no farther column can lower any pixel.
    return (d <= w) & (d * d < jnp.max(best))

  def body(state):
    d, best = state
    return d + 1, lower(best, d)

  _, best = jax.lax.while_loop(cond, body, (jnp.int32(1), g2))
  return best


def _row_pass_envelope(g2: jax.Array) -> jax.Array:
  """min_q g2[..., q] + (x - q)^2 by Meijster's lower envelope of parabolas, all rows in lockstep."""
  shape = g2.shape
  w = shape[-1]
  # Sites: (W + 2, N) with the zero-padding columns -1 and W as sites of value 0.
  f = g2.reshape(-1, w).T
  f = jnp.pad(f, ((1, 1), (0, 0)))
  m, n = f.shape
  cols = jnp.arange(n)

  # The stack (sites s, region starts t) lives in (m, N) arrays; its top entry is also carried as
  # (N,) vectors (st, tt, fst = f[st]) so the common no-pop step needs no gather.
  def forward(u, carry):
    s, t, top, st, tt, fst = carry
    fu = f[u]

    def must_pop(c):
      top, st, tt, fst = c
      return (top >= 0) & ((tt - st) ** 2 + fst > (tt - u) ** 2 + fu)

    def pop(c):
      top, st, tt, fst = c
      top = top - must_pop(c).astype(top.dtype)
      i = jnp.maximum(top, 0)
      st = s[i, cols]
      return top, st, t[i, cols], f[st, cols]

    top, st, tt, fst = jax.lax.while_loop(lambda c: jnp.any(must_pop(c)), pop, (top, st, tt, fst))
    empty = top < 0
    # Where u's parabola starts to beat st's (Meijster's Sep), + 1.
    start = 1 + jnp.floor_divide(u * u - st * st + fu - fst, 2 * jnp.maximum(u - st, 1))
    push = ~empty & (start < m)
    write = empty | push
    new_top = jnp.where(empty, 0, jnp.where(push, top + 1, top))
    new_t = jnp.where(empty, 0, start)
    # Rows that do not write put back their own top entry (a no-op scatter).
    s = s.at[new_top, cols].set(jnp.where(write, u, st))
    t = t.at[new_top, cols].set(jnp.where(write, new_t, tt))
    return (s, t, new_top, jnp.where(write, u, st), jnp.where(write, new_t, tt),
            jnp.where(write, fu, fst))

  zeros = jnp.zeros((m, n), jnp.int32)
  zn = jnp.zeros((n,), jnp.int32)
  s, t, top, st, tt, fst = jax.lax.fori_loop(1, m, forward, (zeros, zeros, zn, zn, zn, f[0]))

  def backward(k, carry):
    d, top, st, tt, fst = carry
    u = m - 1 - k
    d = d.at[u].set((u - st) ** 2 + fst)
    top = jnp.where(u == tt, top - 1, top)
    i = jnp.maximum(top, 0)
    st_next = s[i, cols]
    return d, top, st_next, t[i, cols], f[st_next, cols]

  d, *_ = jax.lax.fori_loop(0, m, backward, (zeros, top, st, tt, fst))
  return d[1:-1].T.reshape(shape)


def edt(mask: jax.Array, method: str = "auto") -> jax.Array:
  """(..., H, W) bool -> (..., H, W) float32 Euclidean distance (sqrt of the exact squared one)."""
  return jnp.sqrt(squared_edt(mask, method).astype(jnp.float32))


# Block size and blocks per exact-evaluation round of `max_distance` (tuned on CPU).
_BLOCK = 4
_CHUNK = 32
# Masks whose blocks all lie within _SMALL_COARSE (squared, in blocks) of a mixed block have
# distances below _SMALL_RADIUS + 1: a full transform with a few unrolled offsets is cheaper.
_SMALL_COARSE = 4
_SMALL_RADIUS = 12


def _sqrt32(d2: jax.Array) -> jax.Array:
  """The float32 distance of an int squared distance, exactly as `edt` computes it."""
  return jnp.sqrt(jnp.maximum(d2, 0).astype(jnp.float32))


def _tie_floor(d2: jax.Array) -> jax.Array:
  """The smallest int32 squared distance whose float32 distance may equal that of d2.

  float32 square roots of distinct integers coincide only above 2^22; the margin d2 / 2^20 + 1
  covers twice their rounding error, so no pixel that ties in float32 is pruned.
  """
  return d2 - (d2 >> 20) - 1


def _max_distance_one(mask: jax.Array, keep: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`max_distance` of one (Hp, Wp) mask, Hp and Wp multiples of _BLOCK (flat index in (Hp, Wp))."""
  s = _BLOCK
  hp, wp = mask.shape
  nb, mb = hp // s, wp // s

  def blocks(a):  # (Hp, Wp) -> (nb, mb, s, s)
    return a.reshape(nb, s, mb, s).transpose(0, 2, 1, 3)

  g = _column_distance(mask, sequential=True)
  g2 = g * g
  # Coarse mask: a block is foreground when all its pixels are. Any background pixel lies in a
  # coarse background block and every coarse background block holds one, so with the block
  # distance dc (exact, in block units) and (s - 1) / sqrt(2) from any pixel to its block centre,
  # s * dc -/+ (s - 1) * sqrt(2) bounds the distance of every pixel of the block from below/above.
  coarse = blocks(mask).all(axis=(2, 3))
  gc = _column_distance(coarse, sequential=True)
  dc2 = _row_pass_offsets(gc * gc)
  dc = _sqrt32(dc2)
  slack = (s - 1) * math.sqrt(2.0)
  # The bounds are float32: a relative margin of 2^-20 (several times its rounding error) and
  # 2 keep them on the safe side.
  upper = jnp.floor((s * dc + slack) ** 2 * (1 + 2.0 ** -20)).astype(jnp.int32) + 2
  upper = jnp.minimum(upper, blocks(g2).max(axis=(2, 3)))  # D <= g^2 (a background pixel above/below)
  lower = jnp.floor(jnp.maximum(s * dc - slack, 0.0) ** 2 * (1 - 2.0 ** -20)).astype(jnp.int32) - 2
  usable = blocks(keep).any(axis=(2, 3))  # blocks that hold a pixel that may be chosen
  start = jnp.max(jnp.where(usable, lower, 0))  # the answer is at least this
  keep_blocks = blocks(keep).reshape(nb * mb, s, s)
  g2_rows = g2.reshape(nb, s, wp)
  offsets = jnp.arange(s, dtype=jnp.int32)
  columns = jnp.arange(wp, dtype=jnp.int32)

  def evaluate(ids, real):
    """Exact D of the pixels of blocks `ids` (K,) -> (K, s, s) int32 (-1: not a candidate), flat."""
    bi, bj = ids // mb, ids % mb
    rows_g2 = g2_rows[bi]                                # (K, s, Wp)
    x = bj[:, None] * s + offsets                        # (K, s) pixel columns
    d = rows_g2[:, :, None, :] + (x[:, None, :, None] - columns) ** 2  # (K, s rows, s cols, Wp)
    d = d.min(axis=-1)
    d = jnp.minimum(d, jnp.minimum((x + 1) ** 2, (wp - x) ** 2)[:, None, :])  # padding columns
    d = jnp.where(keep_blocks[ids] & real[:, None, None], d, -1)
    y = bi[:, None] * s + offsets
    return d, y[:, :, None] * wp + x[:, None, :]

  def merge(best, index, d, flat):
    """Fold one round into (best int32 squared distance, first flat index of its float32 value)."""
    new_best = jnp.maximum(best, d.max())
    value = _sqrt32(new_best)
    tie = (d >= 0) & (_sqrt32(d) == value)
    round_index = jnp.min(jnp.where(tie, flat, _NO_INDEX))
    still = (best >= 0) & (_sqrt32(best) == value)
    return new_best, jnp.where(still, jnp.minimum(index, round_index), round_index)

  def candidates(done, best):
    floor = _tie_floor(jnp.maximum(best, start))
    return (usable & (upper >= floor)).reshape(-1) & ~done

  def one_round(done, best, index, chosen):
    ids, = jnp.nonzero(chosen, size=_CHUNK, fill_value=0)
    real = jnp.arange(_CHUNK) < jnp.sum(chosen)
    best, index = merge(best, index, *evaluate(ids, real))
    return done.at[ids].max(real), best, index

  def bounded():
    # First the deepest blocks (they hold the answer or come close), then every block whose
    # upper bound still reaches the best found, in chunks.
    depth = jnp.where(usable, dc2, -1)
    deepest = (depth == depth.max()).reshape(-1)
    state = one_round(jnp.zeros(nb * mb, bool), jnp.int32(-1), jnp.int32(_NO_INDEX), deepest)
    state = jax.lax.while_loop(lambda c: jnp.any(candidates(c[0], c[1])),
                               lambda c: one_round(*c, candidates(c[0], c[1])), state)
    return state[1], state[2]

  def small():
    d2 = jnp.where(keep, _row_pass_offsets(g2, _SMALL_RADIUS), -1)
    best = d2.max()
    tie = (d2 >= 0) & (_sqrt32(d2) == _sqrt32(best))
    return best, jnp.min(jnp.where(tie, jnp.arange(hp * wp, dtype=jnp.int32).reshape(hp, wp),
                                   _NO_INDEX))

  def nothing():
    return jnp.int32(0), jnp.int32(0)

  is_small = jnp.max(jnp.where(usable, dc2, 0)) <= _SMALL_COARSE
  branch = jnp.where(jnp.any(keep), jnp.where(is_small, 1, 2), 0)
  best, index = jax.lax.switch(branch, [nothing, small, bounded])
  value = _sqrt32(best)
  return value, jnp.where(value > 0, index, 0)


def max_distance(mask: jax.Array, keep: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The largest distance over `keep` pixels and the first pixel attaining it, exactly.

  Equals `d = edt(mask) * keep; d.max(), argmax(d)` (first maximum in row-major order; index 0
  when every kept distance is 0) without the whole transform. Per mask, branch and bound over
  4 x 4 blocks: an exact coarse transform of the block mask bounds every block's distances from
  both sides, and only the blocks whose upper bound reaches the best distance found so far get
  their pixels' exact distances (from the column pass, one row each). Masks with only short
  distances take a full transform with a few unrolled offsets instead. Masks run one after the
  other (`lax.map`), the fastest on CPU; on GPU/TPU the whole transform (`edt`) is faster.

  Args:
    mask: (..., H, W) bool foreground (outside the array is background).
    keep: (..., H, W) bool pixels that may be chosen (others count as distance 0).
  Returns:
    value: (...) float32 largest distance; index: (...) int32 flat index y * W + x.
  """
  mask = jnp.asarray(mask, bool)
  keep = jnp.asarray(keep, bool) & mask
  h, w = mask.shape[-2:]
  hp, wp = -(-h // _BLOCK) * _BLOCK, -(-w // _BLOCK) * _BLOCK
  lead = mask.shape[:-2]
  pad = [(0, 0)] * len(lead) + [(0, hp - h), (0, wp - w)]  # background, as outside the array
  flat = (jnp.pad(mask, pad).reshape(-1, hp, wp), jnp.pad(keep, pad).reshape(-1, hp, wp))
  value, index = jax.lax.map(lambda a: _max_distance_one(*a), flat)
  index = (index // wp) * w + index % wp
  return value.reshape(lead), index.reshape(lead)
