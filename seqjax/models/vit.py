"""`vit`: the Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth
16x16 Words").

An image [Y, Z, C] (C channels) is cut into A x A patches, each flattened
(`patchify`), so a task gives IOSpec(kind="classify", input_features=F = A * A * C)
and inputs [B, N, F], N patches. The
shared `SequenceModel` maps every patch through one Dense layer: that is the
linear patch embedding. The backbone prepends a learned CLS token, adds a learned
positional embedding (N + 1 rows), runs a bidirectional pre-LN encoder, and hands
the CLS output (after the final LayerNorm) to the classifier head, placed at every
position as the classify interface asks.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models import positional
from seqjax.models.common import SequenceModel
from seqjax.models.transformer import AttentionModelConfig
from seqjax.models.transformer import PooledEncoder


def patchify(images_BxYxZxC, patch: int):
  """Non-overlapping A x A patches (A = `patch`) in row-major order:
  [B, (Y/A)(Z/A), A*A*C]."""
  b, h, w, c = images_BxYxZxC.shape
  if h % patch or w % patch:
    raise ValueError(f"Image {h}x{w} is not divisible into {patch}x{patch} patches.")
  x = images_BxYxZxC.reshape(b, h // patch, patch, w // patch, patch, c)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


@dataclasses.dataclass(frozen=True)
class ViTConfig(AttentionModelConfig):
  """`config.model` fields of `vit` (CLS pooling and learned positions are fixed)."""

  def build(self, io: IOSpec) -> nn.Module:
    if io.kind != "classify" or io.input_features is None:
      raise ConfigError("model.name='vit' needs a classify task with patch "
                        "features (IOSpec.input_features), got "
                        f"kind={io.kind!r}, input_features={io.input_features}.")
    positional.check_table("learned", io.length + 1,
                           [n + 1 for n in io.eval_lengths])  # + the cls token
    return SequenceModel(io=io, width=self.width, backbone=PooledEncoder(
        self, "learned", "cls", io.length))
