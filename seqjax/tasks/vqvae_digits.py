"""The image tokenizer's training task: reconstruct scikit-learn's 8x8 digits,
quantised to `grey_levels` levels, through a bottleneck of one discrete code per
2x2 patch (model `dvae`; DALL-E's dVAE, Ramesh et al. 2021, at this scale). The
trained run is what `text_to_image` reads through `task.tokenizer_run`.

Inputs [B, 16, 4]: the 2x2 patches (`seqjax.dvae_codec.patches`), pixel levels
scaled to [0, 1]. Targets [B, 64]: the level of each pixel, patch-major (patch p,
pixel q at 4p + q); every position scored. IOSpec kind "autoencode". Headline:
`pixel_accuracy` (max); `image_exact` is the fraction of images reconstructed
without an error. Chance: the frequency of the most common level among the
training pixels. Split as in `sequential_digits` (same fields, same images).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as onp

from seqjax import dvae_codec
from seqjax.errors import ConfigError
from seqjax.tasks import base
from seqjax.tasks import sequential_digits


def quantise(images_NxYxZ, grey_levels: int) -> onp.ndarray:
  """Images in [0, 1] -> levels 0..G-1 (int32, same shape): floor(x (G-1) + 1/2)."""
  x = onp.asarray(images_NxYxZ, onp.float64)
  return onp.floor(x * (grey_levels - 1) + 0.5).astype(onp.int32)


def check_grey_levels(grey_levels) -> None:
  if not isinstance(grey_levels, int) or not 2 <= grey_levels <= 17:
    raise ConfigError(f"task.grey_levels={grey_levels!r} must be an integer "
                      "from 2 to 17 (the images have 17 levels).")


@dataclasses.dataclass(frozen=True)
class VQVAEDigits:
  """Attributes are the `config.task` fields of `vqvae_digits`."""
  grey_levels: int = 4  # G
  split_seed: int = 0   # the split of sequential_digits
  valid_size: int = 180
  test_size: int = 360

  loss = "xent"
  metric = "pixel_accuracy"
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    check_grey_levels(self.grey_levels)
    sequential_digits.SequentialDigits(split_seed=self.split_seed,
                                       valid_size=self.valid_size,
                                       test_size=self.test_size)  # validates

  @property
  def io(self) -> base.IOSpec:
    return base.IOSpec(kind="autoencode", length=dvae_codec.NUM_PATCHES,
                       output_size=self.grey_levels, input_features=4,
                       target_length=dvae_codec.NUM_PATCHES * 4)

  @property
  def chance(self) -> float:
    levels = self.data("train")["levels"]
    return float(onp.bincount(onp.asarray(levels).ravel()).max() / levels.size)

  def data(self, split: str) -> dict:
    images, labels = sequential_digits.load_splits(
        self.split_seed, self.valid_size, self.test_size)[split]
    levels = dvae_codec.patches(quantise(images, self.grey_levels))
    return dict(levels=jnp.asarray(levels), labels=jnp.asarray(labels))

  def sample(self, data: dict, key, batch_size: int):
    index_B = jax.random.randint(key, (batch_size,), 0, data["levels"].shape[0])
    levels = data["levels"][index_B]
    return dict(inputs=levels.astype(jnp.float32) / (self.grey_levels - 1),
                targets=levels.reshape(batch_size, -1),
                mask=jnp.ones((batch_size, levels.shape[1] * 4), jnp.float32))

  def batch(self, key, batch_size: int):
    return self.sample(self.data("train"), key, batch_size)

  def metrics(self, logits_BxLxV, batch):
    out = base.scored_metrics(logits_BxLxV, batch)
    return dict(loss=out["loss"], pixel_accuracy=out["accuracy"],
                image_exact=out["sequence_accuracy"])
