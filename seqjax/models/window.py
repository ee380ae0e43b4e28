"""The fixed-window autoregressive baseline: "look only at the last k steps".

The output at position t is an MLP of the concatenated embeddings of positions
t - k + 1 .. t (zeros before the start), so it is causal by construction and
cannot use anything further back than k - 1 steps. It is the control of every
long-dependency experiment: it must fail once the dependency is longer than k.

Shapes (legend in seqjax.interfaces; W the window k): also J = W - 1, the past
positions carried in the decoding cache.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from seqjax import configs
from seqjax.interfaces import IOSpec
from seqjax.models.common import SequenceModel


@dataclasses.dataclass(frozen=True)
class WindowConfig:
  """`config.model` fields of `window`."""
  width: int = 128      # embedding width D and MLP hidden width
  window: int = 8       # k: positions the model sees, the current one included
  num_layers: int = 2   # hidden layers of the MLP
  dropout: float = 0.0  # dropout on the hidden layers, in training

  def __post_init__(self):
    configs.check_positive("model", width=self.width, window=self.window,
                           num_layers=self.num_layers)
    configs.check_probability("model", dropout=self.dropout)

  def build(self, io: IOSpec) -> nn.Module:
    return SequenceModel(io=io, width=self.width, backbone=WindowMLP(self))


class WindowMLP(nn.Module):
  """x [B, L, D] -> y [B, L, D], y_t = MLP(x_{t-k+1}, ..., x_t).

  With `decode=True` the last k - 1 inputs are carried in the "cache" collection.
  """
  config: WindowConfig

  @nn.compact
  def __call__(self, x_BxLxD, *, train: bool = False, decode: bool = False):
    cfg, (batch, length, width) = self.config, x_BxLxD.shape
    past = cfg.window - 1
    history_BxJxD = jnp.zeros((batch, past, width), x_BxLxD.dtype)
    if decode:
      cache = self.variable("cache", "history", lambda: history_BxJxD)
      history_BxJxD = cache.value
    context = jnp.concatenate([history_BxJxD, x_BxLxD], axis=1)
    if decode and not self.is_initializing():
      cache.value = context[:, context.shape[1] - past:]
    windows_BxLxWD = jnp.concatenate(
        [context[:, i:i + length] for i in range(cfg.window)], axis=-1)
    h = windows_BxLxWD
    for i in range(cfg.num_layers):
      h = nn.gelu(nn.Dense(cfg.width, name=f"hidden_{i}")(h))
      h = nn.Dropout(cfg.dropout, deterministic=not train)(h)
    return nn.Dense(width, name="out")(h)
