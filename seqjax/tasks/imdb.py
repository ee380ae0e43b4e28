"""LRA Text (Tay et al. 2021, after Maas et al. 2011, "Learning Word Vectors for
Sentiment Analysis"): byte-level sentiment classification of IMDB reviews.

Files: the official `aclImdb` folder (aclImdb_v1.tar.gz from
ai.stanford.edu/~amaas/data/sentiment/, which tfds `imdb_reviews`, LRA's
source, reads): train/{neg,pos}/*.txt and test/{neg,pos}/*.txt, 25,000 reviews
each; label 0 for neg, 1 for pos (tfds's ClassLabel order). `task.data_dir`
names the folder.

Tokenisation as LRA's `text_classification/input_pipeline.py` with
tokenizer="char": tfds ByteTextEncoder (the review's UTF-8 bytes, id = byte + 1,
vocabulary 257, 0 pads), truncated to max_length (4,096: the paper's 4K, as S4
and later work run it; the base config in LRA's code says 1,000), padded to it (LRA pads on the
right; `padding="left"` (default) ends every review at the last position, where
the label is scored). Splits: LRA validates on the test set (IMDB has no
validation set); here `valid_size` training reviews, chosen by `split_seed`,
validate instead, and `valid_size=0` restores LRA's choice. Reviews are held in
memory and sampled uniformly with replacement (seqjax.stepping.make_batch_fn).
"""

import dataclasses
import functools
import os

import jax.numpy as jnp
import numpy as onp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base
from seqjax.tasks import datafiles

FOLDERS = ("train/neg", "train/pos", "test/neg", "test/pos")
SOURCE = ("the aclImdb folder of aclImdb_v1.tar.gz, "
          "https://ai.stanford.edu/~amaas/data/sentiment/")


def check_folder(data_dir: str) -> None:
  if not data_dir or not os.path.isdir(data_dir):
    raise ConfigError(
        f"task.data_dir={data_dir!r} is not a directory; it must be {SOURCE}, "
        f"holding {', '.join(f + '/*.txt' for f in FOLDERS)}.")
  empty = [f for f in FOLDERS if not os.path.isdir(os.path.join(data_dir, f))
           or not any(n.endswith(".txt")
                      for n in os.listdir(os.path.join(data_dir, f)))]
  if empty:
    raise ConfigError(
        f"task.data_dir={data_dir!r} has no reviews in {', '.join(empty)}; "
        f"expected {', '.join(f + '/*.txt' for f in FOLDERS)} ({SOURCE}).")


def read_split(data_dir: str, split: str) -> tuple[list[bytes], onp.ndarray]:
  """(review bytes, labels) of `split` ("train" or "test"): neg then pos, each
  in sorted file-name order."""
  docs, labels = [], []
  for label, name in enumerate(("neg", "pos")):
    folder = os.path.join(data_dir, split, name)
    for f in sorted(n for n in os.listdir(folder) if n.endswith(".txt")):
      with open(os.path.join(folder, f), "rb") as fh:
        docs.append(fh.read())
      labels.append(label)
  return docs, onp.array(labels, onp.int32)


@functools.lru_cache(maxsize=2)
def load(data_dir: str, length: int, padding: str, valid_size: int,
         split_seed: int) -> dict:
  """{split: dict(inputs [N, length] uint16, labels [N] int32)}."""
  out = {}
  for split in ("train", "test"):
    docs, labels = read_split(data_dir, split)
    out[split] = dict(inputs=datafiles.byte_ids(docs, length, padding),
                      labels=labels)
  if valid_size == 0:
    out["eval"] = out["test"]
    return out
  train = out["train"]
  if valid_size >= len(train["labels"]):
    raise ConfigError(
        f"task.valid_size={valid_size} leaves no training reviews of the "
        f"{len(train['labels'])} in {data_dir!r}.")
  order = onp.random.RandomState(split_seed).permutation(len(train["labels"]))
  out["eval"] = {k: v[order[:valid_size]] for k, v in train.items()}
  out["train"] = {k: v[onp.sort(order[valid_size:])] for k, v in train.items()}
  return out


@dataclasses.dataclass(frozen=True)
class Imdb(datafiles.LabelledDataset):
  """Attributes are the `config.task` fields of `imdb` (LRA Text)."""
  data_dir: str = ""        # the aclImdb folder
  max_length: int = 4096    # L, bytes per review (longer ones are truncated)
  padding: str = "left"     # "left": the review ends at L-1; "right": LRA
  valid_size: int = 2500    # training reviews held out; 0: validate on test (LRA)
  split_seed: int = 0       # seed of the held-out reviews

  loss = "xent"
  metric = "accuracy"
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_positive("task", max_length=self.max_length)
    configs.check_choice("task", "padding", self.padding, datafiles.PADDINGS)
    if self.valid_size < 0:
      raise ConfigError(f"task.valid_size must be >= 0, got {self.valid_size}.")
    check_folder(self.data_dir)
    self._splits()  # read now, so a bad file stops the run before it starts

  def _splits(self) -> dict:
    return load(self.data_dir, self.max_length, self.padding, self.valid_size,
                self.split_seed)

  @property
  def io(self) -> base.IOSpec:
    return base.IOSpec(kind="classify", length=self.max_length, output_size=2,
                       input_vocab=datafiles.BYTE_VOCAB)

  def data(self, split: str) -> dict:
    d = self._splits()[split]
    return dict(inputs=jnp.asarray(d["inputs"]), labels=jnp.asarray(d["labels"]))

