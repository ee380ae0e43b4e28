"""LRA Image (Tay et al. 2021): CIFAR-10 (Krizhevsky 2009) classified from its
1,024 grey-level pixels as a sequence.

Files: the binary version (cifar-10-binary.tar.gz from
www.cs.toronto.edu/~kriz/cifar.html, folder `cifar-10-batches-bin`):
data_batch_1.bin .. data_batch_5.bin (10,000 images each) and test_batch.bin;
a record is 1 label byte (0-9) and 3,072 pixel bytes: the 1,024 red, then green,
then blue values of a 32x32 image in row-major order. `task.data_dir` names the
folder. Nothing is unpickled.

Pixels as LRA's `image/input_pipeline.py` (normalize=False):
tf.image.rgb_to_grayscale, i.e. in float32 grey = 0.2989 r + 0.5870 g + 0.1140 b
of the channels scaled by 1/255, back to uint8 by multiplying by 255.5 and
truncating (tf.image.convert_image_dtype); the 1,024 grey levels in row-major
order are the tokens (input_vocab 256); the label is scored at the last
position. Splits as LRA's (train[:90%], train[90%:], test), in file order: the
first 45,000 training images train, the last `valid_size` validate (LRA used
tfds's order of the same images), test_batch.bin tests.
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

TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
RECORD = 1 + 3 * 32 * 32
SOURCE = ("cifar-10-batches-bin from cifar-10-binary.tar.gz, "
          "https://www.cs.toronto.edu/~kriz/cifar.html")
GREY_WEIGHTS = onp.array([0.2989, 0.5870, 0.1140], onp.float32)


def read_batch(path: str) -> tuple[onp.ndarray, onp.ndarray]:
  """A binary CIFAR-10 file -> (images [N, 32, 32, 3] uint8, labels [N] int32)."""
  raw = onp.fromfile(path, onp.uint8)
  if raw.size == 0 or raw.size % RECORD:
    raise ConfigError(
        f"{path} has {raw.size} bytes, not a positive multiple of {RECORD} (a "
        "record is 1 label byte and 3,072 pixel bytes): not a CIFAR-10 binary "
        "batch.")
  records = raw.reshape(-1, RECORD)
  labels = records[:, 0].astype(onp.int32)
  if labels.max() > 9:
    bad = int(onp.argmax(labels > 9))
    raise ConfigError(f"{path}: record {bad} has label {labels[bad]}; CIFAR-10 "
                      "labels are 0-9.")
  images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return onp.ascontiguousarray(images), labels


def grey(images_NxYxZx3: onp.ndarray) -> onp.ndarray:
  """tf.image.rgb_to_grayscale of uint8 images, computed as TensorFlow does."""
  flt = images_NxYxZx3.astype(onp.float32) * onp.float32(1 / 255)
  g = flt @ GREY_WEIGHTS
  return (g * onp.float32(255.5)).astype(onp.uint8)


@functools.lru_cache(maxsize=2)
def load(data_dir: str, valid_size: int) -> dict:
  parts = [read_batch(os.path.join(data_dir, f)) for f in TRAIN_FILES]
  images = onp.concatenate([p[0] for p in parts])
  labels = onp.concatenate([p[1] for p in parts])
  if valid_size >= len(labels):
    raise ConfigError(f"task.valid_size={valid_size} leaves none of the "
                      f"{len(labels)} training images to train on.")
  test_images, test_labels = read_batch(os.path.join(data_dir, TEST_FILE))
  cut = len(labels) - valid_size
  seq = lambda im: grey(im).reshape(len(im), -1)
  return {"train": dict(inputs=seq(images[:cut]), labels=labels[:cut]),
          "eval": dict(inputs=seq(images[cut:]), labels=labels[cut:]),
          "test": dict(inputs=seq(test_images), labels=test_labels)}


@dataclasses.dataclass(frozen=True)
class Cifar10(datafiles.LabelledDataset):
  """Attributes are the `config.task` fields of `cifar10` (LRA Image)."""
  data_dir: str = ""       # the cifar-10-batches-bin folder
  valid_size: int = 5000   # the last training images validate (LRA: 10%)

  loss = "xent"
  metric = "accuracy"
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_positive("task", valid_size=self.valid_size)
    datafiles.require_files("task.data_dir", self.data_dir,
                            [*TRAIN_FILES, TEST_FILE], SOURCE)
    self._splits()  # read now, so a bad file stops the run before it starts

  def _splits(self) -> dict:
    return load(self.data_dir, self.valid_size)

  @property
  def io(self) -> base.IOSpec:
    return base.IOSpec(kind="classify", length=1024, output_size=10,
                       input_vocab=256)

  def data(self, split: str) -> dict:
    d = self._splits()[split]
    return dict(inputs=jnp.asarray(d["inputs"]), labels=jnp.asarray(d["labels"]))

