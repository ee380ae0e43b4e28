"""Pathfinder and Path-X (Linsley, Kim, Veerabadran, Windolf & Serre 2018,
"Learning long-range spatial dependencies with horizontal gated recurrent
units"; as used by Long Range Arena, Tay et al. 2021): are the two dots joined by
one dashed contour? Generated here, in the spirit of the generator of Linsley et
al. (github.com/drewlinsley/pathfinder, `snakes2.py`) with the parameters LRA
lists in `lra_benchmarks/data/pathfinder.py`, vectorised over images with NumPy.

An image (`resolution` R_img x R_img, grey levels 0..255, background 0):
- two target contours of `contour_length` dashes whose first dashes start
  `seed_distance` apart near the centre (the seed of the first at least
  2 * seed_distance from every edge, as in snakes2.py);
- `num_distractors` distractor contours of contour_length // 3 dashes anywhere
  (one that cannot be placed is left out, as snakes2.py's allow_incomplete);
- two markers (discs of `marker_radius`, level 255): at the start of target a
  (a = 0 or 1 at random) and at the end of target a (label 1, connected) or of
  the other target (label 0). Both marked ends thus lie about as far apart in
  either case, and the label is drawn uniformly.
A contour: a dash spanning `dash_length` pixels along its heading (one pixel
wide), then a gap of about `gap` empty pixels, then the next dash with the heading turned by an
angle drawn with density cos^2(min(|turn| * continuity, pi / 2)) (snakes2.py's
`get_coords_cmf`: continuity 1 allows turns up to 90 degrees, 1.8 up to 50).
Each dash is drawn among every heading on a 10-degree grid (jittered) with
those weights, the candidates that leave the image, come near another contour
or come back onto their own contour excluded (snakes2.py samples the same way
among free positions); a target contour that cannot grow discards the image,
which is drawn again (about 3 in 4 at 32x32, where the two targets crowd each
other, as in snakes2.py's retries).

Connectivity is exact by construction, so the label can be checked by a flood
fill: call two lit pixels linked when their Chebyshev distance is at most
`link = gap + 1`. Consecutive dashes of one contour are linked (tested per
dash), and every pixel of one contour, the discs at both ends of a target
included (kept clear at either end; drawn only where a marker goes), is more
than `link` away from every pixel of every other contour. The markers are
therefore joined by a chain of linked lit pixels iff they mark one contour.

Presets per resolution (LRA's: `seed_distance`, `marker_radius`, `continuity`,
the number of distractor dashes; for 32, LRA's paddle_length 2 and margin 1;
dash and gap lengths at 64 and 128 chosen here, so that a contour of 14 dashes
is 0.9 to 1.8 image widths long): see `PRESETS`. LRA's difficulty is the contour length: 6
("easy"), 9 ("intermediate"), 14 ("hard", the one LRA reports).
Differences from snakes2.py: one-pixel dashes without anti-aliasing (grey levels
are the dash level and 255), no single-paddle distractors.

Sequence: the pixels in row-major order, a grey level 0..255 per token
(input_vocab 256, LRA's `normalize=False` pipeline), length R_img^2 (1,024;
4,096; Path-X 16,384); the label is scored at the last position.
Data: generated in chunks of `CHUNK` images, chunk c from
numpy.random.default_rng([data_seed, resolution, contour_length, c]), cached as
  $SEQJAX_DATA/pathfinder/<name>.npz   (images, labels, markers)
The first num_train images train, the next num_valid validate, the rest test
(LRA: 80% / 10% / 10% of 200,000).
Letters of this file, beyond the legend in seqjax.interfaces: N images, C the
candidate headings of a dash, A the pixels along a dash, M offsets.
"""

import dataclasses
import functools
import math
import os

import jax.numpy as jnp
import numpy as onp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base
from seqjax.tasks import datafiles

FORMAT = 3       # version of the cache layout and of the generator
CHUNK = 500      # images per generator chunk (and per random stream)
ANGLE_STEP = 10  # degrees between the candidate headings of a dash
MARKER = 255     # grey level of the markers


@dataclasses.dataclass(frozen=True)
class Preset:
  dash_length: int       # pixels per dash, minus one (the dash spans this far)
  gap: int               # empty pixels between dashes
  seed_distance: int     # distance between the starts of the two targets
  marker_radius: float
  continuity: float      # turn penalty: turns up to 90 / continuity degrees
  distractor_dashes: int  # LRA's distractor budget: 20, 22, 35 dashes
  level: int             # grey level of the dashes
  success: float         # measured share of attempts whose targets fit


PRESETS = {
    32: Preset(2, 1, 7, 1.5, 1.0, 20, 255, success=0.25),
    64: Preset(3, 1, 12, 2.5, 1.8, 22, 204, success=0.55),
    128: Preset(5, 2, 20, 3.0, 1.8, 35, 230, success=0.7),
}


def disc_offsets(radius: float) -> onp.ndarray:
  """[M, 2] integer offsets (dy, dx) with dy^2 + dx^2 <= radius^2."""
  r = int(math.floor(radius))
  dy, dx = onp.mgrid[-r:r + 1, -r:r + 1]
  keep = dy ** 2 + dx ** 2 <= radius ** 2
  return onp.stack([dy[keep], dx[keep]], axis=-1)


def square_offsets(r: int) -> onp.ndarray:
  """[(2r+1)^2, 2] integer offsets within Chebyshev distance r."""
  dy, dx = onp.mgrid[-r:r + 1, -r:r + 1]
  return onp.stack([dy.ravel(), dx.ravel()], axis=-1)


def dilate(mask_NxYxZ: onp.ndarray, r: int) -> onp.ndarray:
  """Boolean dilation by a (2r+1) x (2r+1) square (Chebyshev radius r)."""
  out = mask_NxYxZ.copy()
  for axis in (1, 2):
    src, n = out.copy(), out.shape[axis]
    for s in range(1, r + 1):
      lo = [slice(None)] * 3
      hi = [slice(None)] * 3
      lo[axis], hi[axis] = slice(0, n - s), slice(s, n)
      out[tuple(lo)] |= src[tuple(hi)]
      out[tuple(hi)] |= src[tuple(lo)]
  return out


def turn_weight(turn, continuity: float):
  """Unnormalised probability of turning by `turn` radians (snakes2.py)."""
  return onp.cos(onp.minimum(onp.abs(turn) * continuity, onp.pi / 2)) ** 2


class _Canvas:
  """The state of N images being drawn."""

  def __init__(self, n: int, size: int, p: Preset):
    self.n, self.size, self.p = n, size, p
    self.link = p.gap + 1
    self.image = onp.zeros((n, size, size), onp.uint8)
    self.blocked = onp.zeros((n, size, size), bool)  # near a finished contour
    self.blocked[:, :1], self.blocked[:, -1:] = True, True  # padding 1
    self.blocked[:, :, :1], self.blocked[:, :, -1:] = True, True
    self.rows = onp.arange(n)
    self.step = onp.deg2rad(ANGLE_STEP)
    self.directions = onp.deg2rad(onp.arange(-180, 180, ANGLE_STEP))
    self.turns = onp.deg2rad(onp.arange(-90, 90 + ANGLE_STEP, ANGLE_STEP))
    self.steps = onp.linspace(0.0, p.dash_length, 2 * p.dash_length + 1)
    self.disc = disc_offsets(p.marker_radius)
    self.halo = square_offsets(self.link)   # what a contour keeps clear

  def free(self, pix_NxCxAx2, *masks):
    """[N, C]: every pixel inside the image and in none of `masks` [N, Y, Z]."""
    y, x = pix_NxCxAx2[..., 0], pix_NxCxAx2[..., 1]
    ok = (y >= 0) & (y < self.size) & (x >= 0) & (x < self.size)
    yc, xc = onp.clip(y, 0, self.size - 1), onp.clip(x, 0, self.size - 1)
    rows = self.rows[:, None, None]
    for mask in masks:
      ok &= ~mask[rows, yc, xc]
    return ok.all(axis=-1)

  def paint(self, mask, pix_NxAx2, offsets=None, value=True):
    """Sets `mask` [N, Y, Z] to `value` at the pixels [N, A, 2] (each widened
    by `offsets` [M, 2])."""
    if offsets is not None:
      pix_NxAx2 = (pix_NxAx2[:, :, None, :] + offsets[None, None]).reshape(
          self.n, -1, 2)
    y = onp.clip(pix_NxAx2[..., 0], 0, self.size - 1)
    x = onp.clip(pix_NxAx2[..., 1], 0, self.size - 1)
    mask[self.rows[:, None], y, x] = value

  def contours(self, rng, starts: list, dashes: int, discs: bool = False):
    """Grows len(starts) contours in every image, a dash of each in turn, each
    kept clear of the others. Returns (pixels: a [N, Y, Z] bool per contour,
    reserved: the same with the marker discs, ok [N], first pixels, last
    pixels: a [N, 2] per contour). With `discs`, a marker disc must fit at
    either end; both are kept clear of other contours, and drawn only where a
    marker is placed."""
    n, p, m = self.n, self.p, len(starts)
    shape = (n, self.size, self.size)
    own = [onp.zeros(shape, bool) for _ in starts]
    reserved = [onp.zeros(shape, bool) for _ in starts]
    near_own = [onp.zeros(shape, bool) for _ in starts]  # all but the last
    blocked = [self.blocked.copy() for _ in starts]      # dash, dilated by 1
    ok = onp.ones(n, bool)
    end = [s.astype(onp.float64) for s in starts]
    theta, prev, first, last = [None] * m, [None] * m, [None] * m, [None] * m
    if discs:
      for i, s in enumerate(starts):
        ring = onp.rint(s).astype(onp.int64)[:, None, :] + self.disc[None]
        ok &= self.free(ring[:, None], blocked[i])[:, 0]
        self.paint(reserved[i], ring)
        for j in range(m):
          if j != i:
            self.paint(blocked[j], ring, self.halo)
    for d in range(dashes):
      for i in range(m):
        jitter = rng.uniform(-0.5, 0.5, (n, 1)) * self.step
        if d == 0:
          cand = self.directions[None] + jitter
          weight = onp.ones(cand.shape)
          begin = onp.broadcast_to(end[i][:, None, :], cand.shape + (2,))
        else:
          turn = self.turns[None] + jitter
          cand = theta[i][:, None] + turn
          weight = turn_weight(turn, p.continuity)
        u = onp.stack([onp.sin(cand), onp.cos(cand)], axis=-1)
        if d > 0:
          begin = end[i][:, None, :] + (p.gap + 1) * u
        pix = onp.rint(begin[:, :, None, :] + self.steps[None, None, :, None]
                       * u[:, :, None, :]).astype(onp.int64)    # [N, C, A, 2]
        valid = self.free(pix, blocked[i], near_own[i])
        if d > 0:
          gap = onp.abs(pix[:, :, 0, :] - prev[i][:, None, -1, :]).max(axis=-1)
          valid &= gap <= self.link
        if discs and d == dashes - 1:  # room for the marker at the end
          ring = pix[:, :, -1:, :] + self.disc[None, None]
          valid &= self.free(ring, blocked[i])
        # Sample among the valid candidates in proportion to their weight.
        cum = onp.cumsum(weight * valid, axis=1)
        ok &= cum[:, -1] > 0
        choice = onp.argmax(cum > rng.uniform(size=(n, 1)) * cum[:, -1:], axis=1)
        chosen = pix[self.rows, choice]                         # [N, A, 2]
        theta[i] = cand[self.rows, choice]
        end[i] = begin[self.rows, choice] + p.dash_length * u[self.rows, choice]
        self.paint(own[i], chosen)
        if discs and d == dashes - 1:  # the end disc, reserved at once
          chosen = onp.concatenate(
              [chosen, chosen[:, -1:, :] + self.disc[None]], axis=1)
          self.paint(reserved[i], chosen)
        for j in range(m):
          if j != i:
            self.paint(blocked[j], chosen, self.halo)
        if prev[i] is not None:
          self.paint(near_own[i], prev[i], square_offsets(1))
        if d == 0:
          first[i] = chosen[:, 0]
        if d == dashes - 1:
          last[i] = pix[self.rows, choice, -1]
        prev[i] = chosen
    reserved = [r | o for r, o in zip(reserved, own)]
    return own, reserved, ok, first, last

  def keep(self, rows_N):
    """Keeps only the images where `rows_N` (bool) is set."""
    self.image, self.blocked = self.image[rows_N], self.blocked[rows_N]
    self.n = len(self.image)
    self.rows = onp.arange(self.n)

  def commit(self, own, reserved):
    """Draws contour pixels `own` [N, Y, Z]; blocks the surround of `reserved`
    (the pixels with the marker discs)."""
    self.image[own] = self.p.level
    self.blocked |= dilate(reserved, self.link)


def generate_attempt(rng, n: int, size: int, contour_length: int,
                     num_distractors: int, distractor_length: int):
  """One try at `n` images: the ones that succeeded, as (images [m, Y, Z]
  uint8, labels [m], markers [m, 2, 2]: the two marker centres (row, column))."""
  p = PRESETS[size]
  c = _Canvas(n, size, p)
  margin = 2 * p.seed_distance
  seed1 = rng.integers(margin, size - margin, (n, 2)).astype(onp.float64)
  angle = rng.uniform(0, 2 * onp.pi, n)
  seed2 = onp.rint(seed1 + p.seed_distance * onp.stack(
      [onp.sin(angle), onp.cos(angle)], axis=-1))
  own, reserved, ok, first, last = c.contours(
      rng, [seed1, seed2], contour_length, discs=True)
  c.keep(ok)  # distractors only where the targets succeeded
  for o, r in zip(own, reserved):
    c.commit(o[ok], r[ok])
  for _ in range(num_distractors):
    start = rng.integers(1, size - 1, (c.n, 2)).astype(onp.float64)
    (o,), _, fine, _, _ = c.contours(rng, [start], distractor_length)
    o &= fine[:, None, None]
    c.commit(o, o)
  labels = rng.integers(0, 2, c.n)
  origin = rng.integers(0, 2, c.n)
  terminal = onp.where(labels == 1, origin, 1 - origin)
  first, last = onp.stack(first, 1)[ok], onp.stack(last, 1)[ok]   # [n, 2, 2]
  markers = onp.stack([first[c.rows, origin], last[c.rows, terminal]], axis=1)
  for k in range(2):
    c.paint(c.image, markers[:, k, None, :], c.disc, value=MARKER)
  return c.image, labels.astype(onp.int32), markers.astype(onp.int16)


def generate_chunk(seed_seq: list[int], num: int, size: int, contour_length: int,
                   num_distractors: int, distractor_length: int):
  """`num` images (successful attempts, in order) from one random stream."""
  rng = onp.random.default_rng(seed_seq)
  images, labels, markers = [], [], []
  have = 0
  while have < num:
    tries = 16 + int(1.2 * (num - have) / PRESETS[size].success)
    im, lab, mk = generate_attempt(rng, tries, size, contour_length,
                                   num_distractors, distractor_length)
    images.append(im)
    labels.append(lab)
    markers.append(mk)
    have += len(lab)
  return (onp.concatenate(images)[:num], onp.concatenate(labels)[:num],
          onp.concatenate(markers)[:num])


def generate(seed: int, num: int, size: int, contour_length: int,
             num_distractors: int, distractor_length: int):
  """`num` images, chunk by chunk: (images [num, Y, Z], labels, markers)."""
  parts = [generate_chunk([seed, size, contour_length, c], min(CHUNK, num - start),
                          size, contour_length, num_distractors, distractor_length)
           for c, start in enumerate(range(0, num, CHUNK))]
  return tuple(onp.concatenate(x) for x in zip(*parts))


@dataclasses.dataclass(frozen=True)
class Pathfinder(datafiles.LabelledDataset):
  """Attributes are the `config.task` fields of `pathfinder`."""
  resolution: int = 32        # image side: 32 (Pathfinder), 64, 128 (Path-X)
  contour_length: int = 14    # dashes per target contour: 6, 9 or 14 (LRA: 14)
  num_train: int = 160000     # images per split (LRA: 80 / 10 / 10 of 200,000)
  num_valid: int = 20000
  num_test: int = 20000
  data_seed: int = 0          # seed of the generator (not the run's seed)

  loss = "xent"
  metric = "accuracy"         # accuracy of connected / not connected
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_choice("task", "resolution", self.resolution, tuple(PRESETS))
    configs.check_positive("task", num_train=self.num_train,
                           num_valid=self.num_valid, num_test=self.num_test)
    if not 3 <= self.contour_length <= 20:
      raise ConfigError(
          f"task.contour_length={self.contour_length} must be in 3..20 dashes "
          "(LRA: 6, 9 or 14).")

  @property
  def io(self) -> base.IOSpec:
    return base.IOSpec(kind="classify", length=self.resolution ** 2,
                       output_size=2, input_vocab=256)

  @property
  def num_distractors(self) -> int:
    return PRESETS[self.resolution].distractor_dashes // self.distractor_length

  @property
  def distractor_length(self) -> int:
    return max(1, self.contour_length // 3)

  @property
  def link(self) -> int:
    """Lit pixels this close (Chebyshev) belong to one contour."""
    return PRESETS[self.resolution].gap + 1

  def cache_path(self) -> str:
    name = (f"v{FORMAT}_seed{self.data_seed}_res{self.resolution}_len"
            f"{self.contour_length}_n{self.num_train}-{self.num_valid}-"
            f"{self.num_test}.npz")
    return os.path.join(datafiles.data_dir(), "pathfinder", name)

  def _splits(self) -> dict:
    return _load(self.cache_path(), self.resolution, self.contour_length,
                 self.data_seed, (self.num_train, self.num_valid, self.num_test),
                 self.num_distractors, self.distractor_length)

  def data(self, split: str) -> dict:
    """The examples of `split` ("train", "eval" or "test") as device arrays."""
    d = self._splits()[split]
    return dict(inputs=jnp.asarray(d["images"].reshape(len(d["labels"]), -1)),
                labels=jnp.asarray(d["labels"]))


@functools.lru_cache(maxsize=4)
def _load(path: str, size: int, contour_length: int, seed: int, sizes: tuple,
          num_distractors: int, distractor_length: int) -> dict:
  """{split: dict(images, labels, markers)} from the cache, generated if absent."""
  if not os.path.exists(path):
    images, labels, markers = generate(seed, sum(sizes), size, contour_length,
                                       num_distractors, distractor_length)
    datafiles.save_npz(path, images=images, labels=labels, markers=markers)
  with onp.load(path) as f:
    arrays = {k: f[k] for k in ("images", "labels", "markers")}
  bounds = onp.cumsum([0, *sizes])
  return {s: {k: v[a:b] for k, v in arrays.items()}
          for s, a, b in zip(("train", "eval", "test"), bounds[:-1], bounds[1:])}
