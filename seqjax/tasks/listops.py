"""ListOps (Nangia & Bowman 2018, "ListOps: A Diagnostic Dataset for Latent Tree
Learning"), as generated for Long Range Arena (Tay et al. 2021, "Long Range
Arena: A Benchmark for Efficient Transformers"; google-research/long-range-arena
`lra_benchmarks/data/listops.py`).

Expressions: nested MIN, MAX, MED (the integer part of the median) and SM (sum
mod 10) over digits 0-9, e.g. `[MAX 2 9 [MIN 4 7 ] 0 ]` = 9. The LRA generator's
rules, followed here call for call with Python's `random.Random(data_seed)`:
from depth 1, a node below `max_depth` is an operator with probability 0.25 (else
a uniform digit); an operator has randint(2, max_args) children, generated first,
then its operator is drawn uniformly. Length counts a digit as 1 and an operator
as 2 (its token and its closing bracket) plus its children: exactly the number of
tokens. Trees are drawn until there are num_train + num_valid + num_test distinct
ones with min_length < length < max_length; the first num_train (in order of
generation) train, the next num_valid validate, the rest test. LRA: depth 10,
10 args, 500 < length < 2000, 96,000 / 2,000 / 2,000.

Tokenisation (as REFERENCES.md, the S4 ListOps loader): parentheses dropped,
split on whitespace, `]` its own token. Ids: 0 padding, digits 0-9 -> 1..10,
[MIN 11, [MAX 12, [MED 13, [SM 14, ] 15. (The original LRA pipeline used a
TensorFlow-Datasets tokenizer that drops `]`; this follows the S4 form.) Inputs
are [B, max_length]: left-padded by default, so the expression ends at the
last position, where the label is scored (IOSpec kind "classify") and a causal
model has read the whole expression; `padding="right"` gives LRA's layout.

Data: generated once per parameter set and cached on disk at
  $SEQJAX_DATA/listops/<name>.npz   (default $SEQJAX_DATA = ~/.cache/seqjax),
<name> listing every generation parameter (see `cache_path`). Or, with
`tsv_dir`, the official LRA files `basic_train.tsv`, `basic_val.tsv` and
`basic_test.tsv` there (columns Source and Target), tokenised the same way and
truncated to max_length tokens as LRA's input pipeline does. The splits are held
as device arrays; batches sample a split uniformly with replacement.
Chance: the frequency of the most common label in the training split.
"""

import csv
import dataclasses
import functools
import os
import random

import jax.numpy as jnp
import numpy as onp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base
from seqjax.tasks import datafiles

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
VOCAB = ("<pad>",) + tuple(str(d) for d in range(10)) + OPERATORS + (END,)
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
OPERATOR_P = 0.25        # LRA's VALUE_P: a node is an operator if random() <= 0.25
SPLITS = ("train", "eval", "test")
TSV_FILES = {"train": "basic_train.tsv", "eval": "basic_val.tsv",
             "test": "basic_test.tsv"}
FORMAT = 1               # version of the cache file layout


def _apply(op: str, args: list[int]) -> int:
  if op == "[MIN":
    return min(args)
  if op == "[MAX":
    return max(args)
  if op == "[MED":
    return int(onp.median(args))
  return sum(args) % 10


def generate_tree(rng: random.Random, depth: int, max_depth: int,
                  max_args: int) -> tuple[list[str], int]:
  """One expression as (tokens, value), drawn as the LRA generator draws it."""
  r = rng.random() if depth < max_depth else 1.0
  if r > OPERATOR_P:
    value = rng.choice(range(10))
    return [str(value)], value
  num_args = rng.randint(2, max_args)
  children = [generate_tree(rng, depth + 1, max_depth, max_args)
              for _ in range(num_args)]
  op = rng.choice(OPERATORS)
  tokens = [op] + [t for child, _ in children for t in child] + [END]
  return tokens, _apply(op, [v for _, v in children])


def max_tree_length(max_depth: int, max_args: int) -> int:
  """Tokens of the largest tree: every node above max_depth a full operator."""
  length = 1
  for _ in range(max_depth - 1):
    length = 2 + max_args * length
  return length


def generate(seed: int, num: int, min_length: int, max_length: int,
             max_depth: int, max_args: int) -> tuple[list[list[str]], list[int]]:
  """`num` distinct expressions with min_length < length < max_length."""
  rng = random.Random(seed)
  found: dict[str, int] = {}
  while len(found) < num:
    tokens, value = generate_tree(rng, 1, max_depth, max_args)
    if min_length < len(tokens) < max_length:
      found.setdefault(" ".join(tokens), value)
  return [s.split() for s in found], list(found.values())


def tokenize(source: str) -> list[int]:
  """An LRA `Source` string -> token ids (parentheses dropped)."""
  words = source.replace("(", " ").replace(")", " ").split()
  unknown = sorted({w for w in words if w not in TOKEN_ID})
  if unknown:
    raise ConfigError(f"ListOps source has unknown tokens {unknown}; known: "
                      f"{' '.join(VOCAB[1:])}.")
  return [TOKEN_ID[w] for w in words]


def encode(token_lists: list[list[int]], length: int) -> tuple[onp.ndarray, onp.ndarray]:
  """Right-padded ids [N, length] uint8 (truncated to `length`) and lengths [N]."""
  ids = onp.zeros((len(token_lists), length), onp.uint8)
  lengths = onp.zeros(len(token_lists), onp.int32)
  for i, tokens in enumerate(token_lists):
    tokens = tokens[:length]
    ids[i, :len(tokens)] = tokens
    lengths[i] = len(tokens)
  return ids, lengths


def read_tsv(path: str, length: int) -> dict:
  """An official LRA ListOps TSV (header Source, Target) -> arrays."""
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
  ids, lengths = encode([tokenize(r["Source"]) for r in rows], length)
  return dict(ids=ids, lengths=lengths,
              labels=onp.array([int(r["Target"]) for r in rows], onp.int32))


@dataclasses.dataclass(frozen=True)
class ListOps(datafiles.LabelledDataset):
  """Attributes are the `config.task` fields of `listops`."""
  max_length: int = 2000    # expressions shorter than this; model input length L
  min_length: int = 500     # expressions longer than this
  max_depth: int = 10       # tree depth limit (the root is depth 1)
  max_args: int = 10        # most arguments of an operator
  num_train: int = 96000    # distinct expressions per split
  num_valid: int = 2000
  num_test: int = 2000
  data_seed: int = 0        # seed of the generator (not the run's seed)
  padding: str = "left"     # "left": expression ends at L-1; "right": LRA layout
  tsv_dir: str = ""         # directory of the official LRA TSVs; "" generates

  loss = "xent"
  metric = "accuracy"       # accuracy of the value of the expression
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_positive(
        "task", max_length=self.max_length, max_depth=self.max_depth,
        num_train=self.num_train, num_valid=self.num_valid, num_test=self.num_test)
    configs.check_choice("task", "padding", self.padding, ("left", "right"))
    if self.max_args < 2:
      raise ConfigError(f"task.max_args={self.max_args} must be at least 2.")
    if not 0 <= self.min_length < self.max_length - 1:
      raise ConfigError(
          f"task.min_length={self.min_length} must be >= 0 and leave room below "
          f"task.max_length={self.max_length} (lengths are strictly between).")
    longest = max_tree_length(self.max_depth, self.max_args)
    if self.min_length >= longest - 1:
      raise ConfigError(
          f"task.min_length={self.min_length} leaves no room: the longest tree "
          f"of depth {self.max_depth} with {self.max_args} arguments has "
          f"{longest} tokens.")
    if self.tsv_dir:
      missing = [f for f in TSV_FILES.values()
                 if not os.path.exists(os.path.join(self.tsv_dir, f))]
      if missing:
        raise ConfigError(
            f"task.tsv_dir={self.tsv_dir!r} lacks {', '.join(missing)} (the LRA "
            "ListOps files).")

  @property
  def io(self) -> base.IOSpec:
    return base.IOSpec(kind="classify", length=self.max_length, output_size=10,
                       input_vocab=len(VOCAB))

  def cache_path(self) -> str:
    name = (f"v{FORMAT}_seed{self.data_seed}_n{self.num_train}-{self.num_valid}-"
            f"{self.num_test}_len{self.min_length}-{self.max_length}_depth"
            f"{self.max_depth}_args{self.max_args}.npz")
    return os.path.join(datafiles.data_dir(), "listops", name)

  def _splits(self) -> dict:
    return _load(self.tsv_dir, self.cache_path(), self.generation_args())

  def generation_args(self) -> tuple:
    return (self.data_seed, self.num_train, self.num_valid, self.num_test,
            self.min_length, self.max_length, self.max_depth, self.max_args)

  def data(self, split: str) -> dict:
    """The examples of `split` ("train", "eval" or "test") as device arrays."""
    d = self._splits()[split]
    ids = d["ids"]
    if self.padding == "left":  # shift each row right by its padding
      shift = self.max_length - d["lengths"]
      cols = (onp.arange(self.max_length)[None, :] - shift[:, None]) % self.max_length
      ids = onp.take_along_axis(ids, cols, axis=1)
    return dict(inputs=jnp.asarray(ids), labels=jnp.asarray(d["labels"]))


@functools.lru_cache(maxsize=4)
def _load(tsv_dir: str, path: str, args: tuple) -> dict:
  """{split: dict(ids, lengths, labels)} from the TSVs, the cache, or generated."""
  max_length = args[5]
  if tsv_dir:
    return {s: read_tsv(os.path.join(tsv_dir, f), max_length)
            for s, f in TSV_FILES.items()}
  if not os.path.exists(path):
    seed, n_train, n_valid, n_test, min_len, max_len, depth, max_args = args
    tokens, labels = generate(seed, n_train + n_valid + n_test, min_len, max_len,
                              depth, max_args)
    ids, lengths = encode([[TOKEN_ID[t] for t in ts] for ts in tokens], max_len)
    datafiles.save_npz(path, ids=ids, lengths=lengths,
                       labels=onp.array(labels, onp.int32))
  with onp.load(path) as f:
    ids, lengths, labels = f["ids"], f["lengths"], f["labels"]
  bounds = onp.cumsum([0, args[1], args[2], args[3]])
  return {s: dict(ids=ids[a:b], lengths=lengths[a:b], labels=labels[a:b])
          for s, a, b in zip(SPLITS, bounds[:-1], bounds[1:])}
