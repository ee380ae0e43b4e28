"""Sequential digits: pixel-by-pixel image classification (sequential MNIST, Le,
Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of Rectified
Linear Units"; with a fixed random permutation of the pixels, pMNIST, from the
same paper) on the 8x8 handwritten digits shipped inside scikit-learn
(`sklearn.datasets.load_digits`: 1,797 real images, 10 classes, no download).
The only real-data task.

Pixels (integers 0..16) are scaled to [0, 1]. Two layouts:
  pixels  (default) inputs [B, 64, 1]: the pixels in row-major order, or in the
          fixed random order of `permute` (a permutation drawn from
          `permutation_seed`, the same for every example and split).
  patches inputs [B, 4, 16], for the ViT: the four 4x4 patches in row-major
          order (top-left, top-right, bottom-left, bottom-right), each flattened
          row-major (pixel (r, c) of the patch at feature 4r + c) -- the layout
          of `patchify` in seqjax/models/vit.py with P = 4, one channel.
The label is scored at the last position (IOSpec kind "classify").

Splits are fixed by `split_seed`, not by the run's seed: a shuffle of the 1,797
images gives `test_size` test images, then `valid_size` validation images, and
the rest (1,257 by default) for training. Training batches sample the training
split uniformly with replacement; evaluation samples the validation or test split
the same way (the mean over `train.eval_batches` batches estimates the split's
accuracy). Chance: the frequency of the most common class in the training split.
"""

import dataclasses
import functools

import jax.numpy as jnp
import numpy as onp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base
from seqjax.tasks import datafiles

IMAGE, PATCH = 8, 4
SPLITS = ("train", "eval", "test")


@functools.lru_cache(maxsize=4)
def load_splits(split_seed: int, valid_size: int, test_size: int) -> dict:
  """{split: (images [N, 8, 8] float32 in [0, 1], labels [N] int32)}, NumPy."""
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  digits = load_digits()
  images = (digits.images / 16.0).astype(onp.float32)
  labels = digits.target.astype(onp.int32)
  order = onp.random.RandomState(split_seed).permutation(len(labels))
  test, valid = order[:test_size], order[test_size:test_size + valid_size]
  train = order[test_size + valid_size:]
  return {name: (images[idx], labels[idx])
          for name, idx in zip(SPLITS, (train, valid, test))}


@dataclasses.dataclass(frozen=True)
class SequentialDigits(datafiles.LabelledDataset):
  """Attributes are the `config.task` fields of `sequential_digits`."""
  layout: str = "pixels"     # "pixels" (length 64) or "patches" (4 of 4x4, ViT)
  permute: bool = False      # pixels in a fixed random order (pMNIST-style)
  permutation_seed: int = 0  # seed of that order
  split_seed: int = 0        # seed of the fixed train / validation / test split
  valid_size: int = 180      # validation images
  test_size: int = 360       # test images

  loss = "xent"
  metric = "accuracy"        # classification accuracy
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_choice("task", "layout", self.layout, ("pixels", "patches"))
    configs.check_positive("task", valid_size=self.valid_size,
                           test_size=self.test_size)
    if self.valid_size + self.test_size >= 1797 - 10:
      raise ConfigError(
          f"task.valid_size + task.test_size = {self.valid_size + self.test_size}"
          " leaves too few of the 1,797 images for training.")
    if self.permute and self.layout == "patches":
      raise ConfigError(
          "task.permute=True needs task.layout='pixels'; patches of permuted "
          "pixels are not image patches.")

  @property
  def io(self) -> base.IOSpec:
    if self.layout == "patches":
      return base.IOSpec(kind="classify", length=(IMAGE // PATCH) ** 2,
                         output_size=10, input_features=PATCH * PATCH)
    return base.IOSpec(kind="classify", length=IMAGE * IMAGE, output_size=10,
                       input_features=1)

  def train_labels(self):
    return self._splits()["train"][1]

  def _splits(self) -> dict:
    return load_splits(self.split_seed, self.valid_size, self.test_size)

  def features(self, images_NxYxZ):
    """Images [N, 8, 8] -> model inputs [N, L, F] in this task's layout."""
    n = images_NxYxZ.shape[0]
    if self.layout == "patches":
      g = IMAGE // PATCH
      x = images_NxYxZ.reshape(n, g, PATCH, g, PATCH).transpose(0, 1, 3, 2, 4)
      return x.reshape(n, g * g, PATCH * PATCH)
    pixels_NxL = images_NxYxZ.reshape(n, IMAGE * IMAGE)
    if self.permute:
      order = onp.random.RandomState(self.permutation_seed).permutation(
          IMAGE * IMAGE)
      pixels_NxL = pixels_NxL[:, order]
    return pixels_NxL[..., None]

  def data(self, split: str) -> dict:
    """The examples of `split` ("train", "eval" or "test") as device arrays."""
    images, labels = self._splits()[split]
    return dict(inputs=jnp.asarray(self.features(images)),
                labels=jnp.asarray(labels))

