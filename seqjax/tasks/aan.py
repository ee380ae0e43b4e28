"""LRA Retrieval (Tay et al. 2021, after Radev et al. 2013, the ACL Anthology
Network): do two papers cite one another? Byte-level, each paper truncated to
`max_length` bytes, read by a two-tower model (IOSpec.pair;
seqjax.models.two_tower).

Files: the LRA release (lra_release.gz, storage.googleapis.com/long-range-arena,
folder lra_release/tsv_data): new_aan_pairs.train.tsv, new_aan_pairs.eval.tsv,
new_aan_pairs.test.tsv; no header, one pair per line, five tab-separated fields
label (0 or 1, written as a float), id1, id2, text1, text2, read without quote
handling (as LRA's `matching/input_pipeline.py`). `task.data_dir` names the
folder.

Tokenisation as LRA's with tokenizer="char": tfds ByteTextEncoder of the first
10,000 bytes of each text (id = byte + 1, vocabulary 257, 0 pads), truncated to
max_length (4,000) and padded to it (right in LRA; `padding="left"` (default)
ends each document at its last position, which a recurrent encoder reads).
Inputs [B, 2 * max_length]: text1, then text2. Pairs are held in memory and
sampled uniformly with replacement.
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

FILES = {"train": "new_aan_pairs.train.tsv", "eval": "new_aan_pairs.eval.tsv",
         "test": "new_aan_pairs.test.tsv"}
SOURCE = ("lra_release/tsv_data of the LRA release, "
          "https://storage.googleapis.com/long-range-arena/lra_release.gz")
LRA_TEXT_BYTES = 10000  # LRA encodes s[:10000] before truncating to max_length


def read_tsv(path: str, length: int, padding: str) -> dict:
  """An official AAN pairs file -> dict(inputs [N, 2 * length] uint16, labels)."""
  docs1, docs2, labels = [], [], []
  with open(path, "rb") as f:
    for number, line in enumerate(f, 1):
      line = line.rstrip(b"\r\n")
      if not line:
        continue
      fields = line.split(b"\t")
      if len(fields) != 5:
        raise ConfigError(
            f"{path}, line {number}: {len(fields)} tab-separated fields; an AAN "
            "pair has 5 (label, id1, id2, text1, text2).")
      try:
        label = float(fields[0])
      except ValueError:
        label = -1.0
      if label not in (0.0, 1.0):
        raise ConfigError(f"{path}, line {number}: label {fields[0]!r} is not "
                          "0 or 1.")
      labels.append(int(label))
      cut = min(LRA_TEXT_BYTES, length)
      docs1.append(fields[3][:cut])
      docs2.append(fields[4][:cut])
  if not labels:
    raise ConfigError(f"{path} holds no pairs.")
  inputs = onp.concatenate([datafiles.byte_ids(docs1, length, padding),
                            datafiles.byte_ids(docs2, length, padding)], axis=1)
  return dict(inputs=inputs, labels=onp.array(labels, onp.int32))


@functools.lru_cache(maxsize=2)
def load(data_dir: str, length: int, padding: str) -> dict:
  return {split: read_tsv(os.path.join(data_dir, name), length, padding)
          for split, name in FILES.items()}


@dataclasses.dataclass(frozen=True)
class Aan(datafiles.LabelledDataset):
  """Attributes are the `config.task` fields of `aan` (LRA Retrieval)."""
  data_dir: str = ""        # folder of new_aan_pairs.{train,eval,test}.tsv
  max_length: int = 4000    # bytes per document; the input is twice as long
  padding: str = "left"     # "left": each document ends at its last position

  loss = "xent"
  metric = "accuracy"
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_positive("task", max_length=self.max_length)
    configs.check_choice("task", "padding", self.padding, datafiles.PADDINGS)
    datafiles.require_files("task.data_dir", self.data_dir, list(FILES.values()),
                            SOURCE)
    self._splits()  # read now, so a bad file stops the run before it starts

  def _splits(self) -> dict:
    return load(self.data_dir, self.max_length, self.padding)

  @property
  def io(self) -> base.IOSpec:
    return base.IOSpec(kind="classify", length=2 * self.max_length,
                       output_size=2, input_vocab=datafiles.BYTE_VOCAB, pair=True)

  def data(self, split: str) -> dict:
    d = self._splits()[split]
    return dict(inputs=jnp.asarray(d["inputs"]), labels=jnp.asarray(d["labels"]))

