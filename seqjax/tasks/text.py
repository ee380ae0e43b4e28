"""Your own text: byte- or character-level language modelling on any UTF-8 file,
or on every file under a folder (`path`; the files whose names match `pattern`,
in sorted order of their paths, joined as they are).

Units: `byte` (the default; 256 tokens, any file will do) or `char` (Unicode
characters; the vocabulary is the sorted set of characters of the whole text,
so no split meets an unknown one; the text must be valid UTF-8).
Splits are contiguous: the first 1 - valid_fraction - test_fraction of the text
trains, the next valid_fraction validates, the last test_fraction tests, so no
window crosses from one split into another. A batch is B windows of L + 1
tokens at uniform random offsets in the split: inputs the first L, targets the
last L (IOSpec kind "lm"; every position scored).

Headline metric: bits per byte, the mean cross-entropy in bits per token times
tokens per byte (1 for bytes; characters / bytes of the whole text for chars),
so byte- and character-level runs compare. Chance: a uniform guess over the
vocabulary, log2(256) = 8 bits per byte for bytes.
"""

import dataclasses
import fnmatch
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as onp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base

UNITS = ("byte", "char")


def list_files(path: str, pattern: str = "*") -> list[str]:
  """`path` itself, or every file under the folder `path` whose name matches
  `pattern` (fnmatch), sorted by path."""
  if os.path.isfile(path):
    return [path]
  return sorted(os.path.join(root, f) for root, _, files in os.walk(path)
                for f in files if fnmatch.fnmatch(f, pattern))


@functools.lru_cache(maxsize=4)
def read_corpus(path: str, unit: str, pattern: str = "*"
                ) -> tuple[onp.ndarray, tuple, float]:
  """(tokens [N], vocabulary (chars, or () for bytes), tokens per byte)."""
  files = list_files(path, pattern)
  if not files:
    raise ConfigError(f"task.path={path!r} holds no files to read (names "
                      f"matching task.pattern={pattern!r}).")
  raw = b"".join(open(f, "rb").read() for f in files)
  if unit == "byte":
    return onp.frombuffer(raw, onp.uint8), (), 1.0
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ConfigError(
        f"task.path={path!r} is not valid UTF-8 (byte {e.start} of the joined "
        f"files: {e.reason}); task.unit='char' needs UTF-8, 'byte' reads any "
        "file.") from None
  # Code points, sorted and numbered (the order of sorted(set(text))).
  points, tokens = onp.unique(onp.frombuffer(text.encode("utf-32-le"), onp.uint32),
                              return_inverse=True)
  vocab = tuple(chr(c) for c in points)
  dtype = onp.uint8 if len(vocab) <= 256 else onp.int32
  return tokens.astype(dtype), vocab, len(text) / max(len(raw), 1)


@dataclasses.dataclass(frozen=True)
class Text:
  """Attributes are the `config.task` fields of `text`."""
  path: str = ""                # a UTF-8 file, or a folder of them
  pattern: str = "*"            # in a folder, the file names read (fnmatch)
  unit: str = "byte"            # byte | char
  length: int = 1024            # L, tokens of context per window
  valid_fraction: float = 0.05  # contiguous validation split, after train
  test_fraction: float = 0.05   # contiguous test split, at the end

  loss = "xent"
  metric = "bits_per_byte"
  mode = "min"
  solved_level = None           # no natural threshold for bits per byte

  def __post_init__(self):
    configs.check_choice("task", "unit", self.unit, UNITS)
    configs.check_positive("task", length=self.length,
                           valid_fraction=self.valid_fraction,
                           test_fraction=self.test_fraction)
    if self.valid_fraction + self.test_fraction >= 1:
      raise ConfigError(
          f"task.valid_fraction + task.test_fraction = "
          f"{self.valid_fraction + self.test_fraction} leaves nothing to train on.")
    if not self.path or not os.path.exists(self.path):
      raise ConfigError(
          f"task.path={self.path!r} does not exist; give a UTF-8 text file or "
          "a folder of them.")
    sizes = {s: len(t) for s, t in self._split_tokens().items()}
    short = {s: n for s, n in sizes.items() if n < self.length + 1}
    if short:
      raise ConfigError(
          f"task.path={self.path!r} is too short for task.length={self.length}: "
          f"the {', '.join(f'{s} split has {n}' for s, n in short.items())} "
          f"{self.unit}s, and a window needs {self.length + 1}.")

  def _corpus(self):
    return read_corpus(self.path, self.unit, self.pattern)

  def _split_tokens(self) -> dict:
    tokens = self._corpus()[0]
    n = len(tokens)
    valid, test = int(n * self.valid_fraction), int(n * self.test_fraction)
    cut = n - valid - test
    return {"train": tokens[:cut], "eval": tokens[cut:n - test],
            "test": tokens[n - test:]}

  @property
  def vocab_size(self) -> int:
    return 256 if self.unit == "byte" else len(self._corpus()[1])

  @property
  def io(self) -> base.IOSpec:
    return base.lm_io(self.length, self.vocab_size)

  @property
  def chance(self) -> float:
    return math.log2(self.vocab_size) * self._corpus()[2]

  def data(self, split: str) -> dict:
    """The tokens of `split` ("train", "eval" or "test") as a device array."""
    return dict(tokens=jnp.asarray(self._split_tokens()[split]))

  def sample(self, data: dict, key, batch_size: int):
    """B windows of L + 1 tokens at uniform offsets: inputs, next-token targets."""
    n = data["tokens"].shape[0]
    start_B = jax.random.randint(key, (batch_size,), 0, n - self.length)
    window = data["tokens"][start_B[:, None] + jnp.arange(self.length + 1)[None]]
    window = window.astype(jnp.int32)
    return dict(inputs=window[:, :-1], targets=window[:, 1:],
                mask=jnp.ones((batch_size, self.length), jnp.float32))

  def batch(self, key, batch_size: int):
    return self.sample(self.data("train"), key, batch_size)

  def metrics(self, logits_BxLxV, batch):
    out = base.scored_metrics(logits_BxLxV, batch)
    del out["sequence_accuracy"]
    out["bits_per_byte"] = out["loss"] / math.log(2) * self._corpus()[2]
    return out
