"""The two-tower classifier of pair tasks (IOSpec.pair; LRA Retrieval, Tay et
al. 2021, `TransformerDualEncoder` and `classifier_head_dual` with the "NLI"
interaction): one encoder, shared, reads each document separately; with u and
v the two document encodings, an MLP classifies [u, v, u * v, u - v]:
Dense(mlp_dim), ReLU, Dense(mlp_dim // 2), ReLU, Dense(V).

Any model that serves a classify task is an encoder: built for one document
(length L/2) with output size D = its width, it maps a document [B, L/2] to
[B, L/2, D], and its output at the last position (the CLS or mean-pooled
vector of an attention encoder, the final state of a recurrent one, each
through the model's output layer) is the document's encoding.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec


class TwoTower(nn.Module):
  """Pairs [B, L] (document 1 in the first L/2 positions, document 2 after) ->
  logits [B, L, V], the same at every position (the task reads the last).

  Attributes:
    encoder: a module mapping documents [B, L/2] to [B, L/2, D].
    mlp_dim: width of the classifier's first hidden layer (the second has half).
    num_classes: V.
  """
  encoder: nn.Module
  mlp_dim: int
  num_classes: int

  @nn.compact
  def __call__(self, inputs_BxL, *, train: bool = False, decode: bool = False):
    if decode:
      raise ValueError("A two-tower classifier has no autoregressive decoding.")
    batch, length = inputs_BxL.shape[:2]
    # Rows 2i and 2i + 1 are the two documents of pair i; one encoder call.
    docs = inputs_BxL.reshape(2 * batch, length // 2, *inputs_BxL.shape[2:])
    enc_2BxD = self.encoder(docs, train=train)[:, -1]
    u_BxD, v_BxD = enc_2BxD[0::2], enc_2BxD[1::2]
    x = jnp.concatenate([u_BxD, v_BxD, u_BxD * v_BxD, u_BxD - v_BxD], axis=-1)
    x = nn.relu(nn.Dense(self.mlp_dim, name="mlp")(x))
    x = nn.relu(nn.Dense(self.mlp_dim // 2, name="mlp2")(x))
    logits_BxV = nn.Dense(self.num_classes, name="logits")(x)
    return jnp.broadcast_to(logits_BxV[:, None, :],
                            (batch, length, self.num_classes))


def build(model_cfg, io: IOSpec) -> nn.Module:
  """`model_cfg` (a config dataclass of seqjax.models.MODELS) as the encoder of
  a two-tower classifier for the pair task `io`; mlp_dim = 4 * width."""
  width = getattr(model_cfg, "width", None)
  if io.kind != "classify" or io.length % 2 or width is None:
    raise ConfigError(
        f"A pair task needs a classify IOSpec of even length and a model with a "
        f"width; got kind={io.kind!r}, length={io.length}, model "
        f"{type(model_cfg).__name__} (width {width}).")
  single = dataclasses.replace(io, length=io.length // 2, output_size=width,
                               pair=False)
  return TwoTower(encoder=model_cfg.build(single), mlp_dim=4 * width,
                  num_classes=io.output_size)
