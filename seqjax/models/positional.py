"""Positional information for attention, chosen by `config.model.positional`.

  none        attention alone is blind to order (kept on purpose, to show it).
  sinusoidal  added to the embeddings (Vaswani et al. 2017, section 3.5):
              PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(p / 10000^(2i/D)).
  learned     a trained table [max_length, D] added to the embeddings
              (Gehring et al. 2017; GPT; the ViT of Dosovitskiy et al. 2021).
  rope        rotary embedding of queries and keys (Su et al. 2021, "RoFormer"):
              each pair (x_2i, x_2i+1) of a head is rotated by the angle
              p * 10000^(-2i/K), so q_m . k_n depends on m - n only.
  alibi       a bias -slope_h * |m - n| added to the scores of head h (Press,
              Smith & Lewis 2022, "Train Short, Test Long"); slopes are the
              geometric sequence of the paper. For a bidirectional encoder we use
              the symmetric distance |m - n| (the paper defines the causal case).

Positions are absolute integer indices [L]; under decoding they start at the
cache index, so every encoding is the same step by step as in a full call.
"""

import math

import flax.linen as nn
import jax.numpy as jnp

from seqjax.errors import ConfigError

POSITIONAL = ("none", "sinusoidal", "learned", "rope", "alibi")


def sinusoidal(positions_L, width: int):
  """The sinusoidal table of Vaswani et al. 2017 at `positions_L`: [L, D]."""
  i_D2 = jnp.arange(0, width, 2, dtype=jnp.float32)
  angle_LxD2 = positions_L[:, None].astype(jnp.float32) * jnp.exp(
      -math.log(10000.0) * i_D2 / width)[None, :]
  pe_LxD2x2 = jnp.stack([jnp.sin(angle_LxD2), jnp.cos(angle_LxD2)], axis=-1)
  return pe_LxD2x2.reshape(positions_L.shape[0], -1)[:, :width]


def check_table(kind: str, rows: int, lengths) -> None:
  """Refuses a learned table of `rows` positions for inputs of `lengths`
  positions that do not fit it (a lookup past the table reads NaN)."""
  too_long = sorted(n for n in lengths if n > rows)
  if kind == "learned" and too_long:
    raise ConfigError(
        f"model.positional='learned' has a table of {rows} positions (the "
        f"task's training length), but the task is also evaluated at "
        f"{too_long} positions (task.eval_lengths), past the table; use "
        "model.positional 'sinusoidal', 'rope' or 'alibi', or evaluate at "
        f"lengths of at most {rows}.")


class AddPositional(nn.Module):
  """Adds a sinusoidal or learned encoding to x [B, L, D] (identity otherwise).

  Attributes:
    kind: one of POSITIONAL.
    max_length: rows of the learned table (positions must stay below it).
  """
  kind: str
  max_length: int

  @nn.compact
  def __call__(self, x_BxLxD, positions_L):
    width = x_BxLxD.shape[-1]
    if self.kind == "sinusoidal":
      pe_LxD = sinusoidal(positions_L, width)
    elif self.kind == "learned":
      table = self.param("table", nn.initializers.normal(0.02),
                         (self.max_length, width))
      pe_LxD = jnp.take(table, positions_L, axis=0)
    else:
      return x_BxLxD
    return x_BxLxD + pe_LxD[None].astype(x_BxLxD.dtype)


def rope(x_BxLxHxK, positions_L, base: float = 10000.0):
  """Rotary embedding (Su et al. 2021): rotates pairs (x_2i, x_2i+1) by p * theta_i."""
  k = x_BxLxHxK.shape[-1]
  theta_K2 = base ** (-jnp.arange(0, k, 2, dtype=jnp.float32) / k)
  angle_LxK2 = positions_L[:, None].astype(jnp.float32) * theta_K2[None, :]
  cos = jnp.cos(angle_LxK2)[None, :, None, :]
  sin = jnp.sin(angle_LxK2)[None, :, None, :]
  pairs = x_BxLxHxK.astype(jnp.float32).reshape(*x_BxLxHxK.shape[:-1], k // 2, 2)
  even, odd = pairs[..., 0], pairs[..., 1]
  rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
  return rotated.reshape(x_BxLxHxK.shape).astype(x_BxLxHxK.dtype)


def alibi_slopes(num_heads: int):
  """Head slopes of ALiBi (Press et al. 2022): 2^(-8/n), 2^(-16/n), ... for n heads a
  power of two; otherwise those of the nearest lower power of two, then every
  other slope of the next power of two (the paper's reference code)."""
  def powers(n):
    return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]
  low = 2 ** int(math.floor(math.log2(num_heads)))
  slopes = powers(low) + powers(2 * low)[0::2][:num_heads - low]
  return jnp.asarray(slopes, jnp.float32)


def alibi_bias(slopes_H, q_pos_L, k_pos_S):
  """ALiBi score bias [1, H, L, S]: -slope_h * |q_pos - k_pos|."""
  dist_LxS = jnp.abs(q_pos_L[:, None] - k_pos_S[None, :]).astype(jnp.float32)
  return -slopes_H[None, :, None, None] * dist_LxS[None, None]
