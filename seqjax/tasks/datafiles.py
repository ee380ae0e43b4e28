"""Files of the dataset tasks: the data directory, atomic cache writes, checks
that the official files a task reads are present, and the one sampler of
labelled examples they share.

Generated data (ListOps, Pathfinder) is cached under
  $SEQJAX_DATA/<task>/<name>.npz   (default $SEQJAX_DATA = ~/.cache/seqjax),
written to a temporary file and renamed, so a reader never sees half a file and
two runs generating at once both end with a whole one.
"""

import os

import jax
import jax.numpy as jnp
import numpy as onp

from seqjax.errors import ConfigError
from seqjax.tasks import base


def data_dir() -> str:
  return os.environ.get("SEQJAX_DATA", os.path.expanduser("~/.cache/seqjax"))


def save_npz(path: str, **arrays) -> None:
  """Writes `arrays` to `path` (.npz, compressed) atomically."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp.npz"
  onp.savez_compressed(tmp, **arrays)
  os.replace(tmp, path)


def require_files(key: str, directory: str, files: list[str], source: str) -> None:
  """ConfigError unless every one of `files` exists in `directory` (config key
  `key`); the message names the missing files and where they come from."""
  if not directory:
    raise ConfigError(
        f"{key} is empty; it must name the directory holding "
        f"{', '.join(files)} ({source}).")
  if not os.path.isdir(directory):
    raise ConfigError(
        f"{key}={directory!r} is not a directory; it must hold "
        f"{', '.join(files)} ({source}).")
  missing = [f for f in files if not os.path.isfile(os.path.join(directory, f))]
  if missing:
    raise ConfigError(
        f"{key}={directory!r} lacks {', '.join(missing)}; expected "
        f"{', '.join(files)} there ({source}).")


def sample_labelled(data: dict, key, batch_size: int):
  """A classify batch of `batch_size` examples of `data` (inputs [N, L],
  labels [N]), uniform with replacement; integer inputs become int32."""
  return labelled_examples(data, jax.random.randint(
      key, (batch_size,), 0, data["labels"].shape[0]))


def labelled_examples(data: dict, index_B):
  """The classify batch of the examples of `data` at indices `index_B` [B]
  (an exact pass over a split reads them in order)."""
  inputs = data["inputs"][index_B]
  if jnp.issubdtype(inputs.dtype, jnp.integer):
    inputs = inputs.astype(jnp.int32)
  length = inputs.shape[1]
  return dict(inputs=inputs,
              targets=base.classify_targets(data["labels"][index_B], length),
              mask=base.last_position_mask(index_B.shape[0], length))


class LabelledDataset:
  """The members every dataset classification task shares, for a task that
  defines `data(split)` (inputs [N, L], labels [N]): batches sampled uniformly
  with replacement, the examples at given indices (an exact pass over a split),
  and accuracy at the one scored (last) position."""

  def sample(self, data: dict, key, batch_size: int):
    """A batch of `batch_size` examples of `data`, uniform with replacement."""
    return sample_labelled(data, key, batch_size)

  def examples(self, data: dict, index_B):
    """The batch of the examples of `data` at indices `index_B` [B]."""
    return labelled_examples(data, index_B)

  def batch(self, key, batch_size: int):
    return self.sample(self.data("train"), key, batch_size)

  @property
  def chance(self) -> float:
    """The share of the most frequent training label: the accuracy of always
    guessing it."""
    labels = self.train_labels()
    return float(onp.bincount(labels, minlength=self.io.output_size).max()
                 / len(labels))

  def train_labels(self):
    """The labels [N] of the training split, as stored."""
    return self._splits()["train"]["labels"]

  def metrics(self, logits_BxLxV, batch):
    out = base.scored_metrics(logits_BxLxV, batch)
    del out["sequence_accuracy"]  # one scored position: the same as accuracy
    return out


PADDINGS = ("left", "right")
BYTE_VOCAB = 257  # tfds ByteTextEncoder, as LRA tokenises: id = byte + 1, 0 pads


def byte_ids(docs: list[bytes], length: int, padding: str) -> onp.ndarray:
  """Documents as LRA's byte tokens (tfds ByteTextEncoder: id = byte + 1, 0 is
  padding), truncated to `length` and padded to it on the `padding` side
  ("right" as LRA's padded_batch; "left" so a document ends at the last
  position, where a causal model is read): [N, length] uint16."""
  out = onp.zeros((len(docs), length), onp.uint16)
  for i, doc in enumerate(docs):
    ids = onp.frombuffer(doc[:length], onp.uint8).astype(onp.uint16) + 1
    if padding == "right":
      out[i, :len(ids)] = ids
    else:
      out[i, length - len(ids):] = ids
  return out
