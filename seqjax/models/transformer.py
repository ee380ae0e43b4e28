"""Transformer blocks and stacks (Vaswani et al. 2017), and the `transformer` model.

A block is self-attention, optional cross-attention on an encoder's output, and
a feed-forward MLP (D -> mlp_ratio * D -> D, GELU in its tanh form), each a
residual branch with dropout on its output:
  pre-LN (default; Xiong et al. 2020):  x = x + f(LN(x)), and a final LN on top;
  post-LN (the 2017 paper):             x = LN(x + f(x)).
Attention dropout is not used (residual and embedding dropout only).

`transformer` reads the task's IOSpec.kind:
  lm        decoder-only, causal; decodes with a KV cache (`decode=True`).
  classify  encoder-only, bidirectional; the sequence is pooled by a CLS token
            prepended to it or by the mean over positions, and the pooled vector
            is placed at every position (the task reads the last one).
The shared `SequenceModel` embeds the tokens and applies the output head.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models import attention
from seqjax.models import positional
from seqjax.models.common import SequenceModel

NORMS = ("pre", "post")
POOLINGS = ("cls", "mean")


@dataclasses.dataclass(frozen=True)
class AttentionModelConfig:
  """`config.model` fields shared by every attention model."""
  width: int = 128                # D, model width
  num_layers: int = 2             # blocks per stack
  num_heads: int = 4              # H; the head dimension is width / num_heads
  mlp_ratio: int = 4              # MLP hidden width = mlp_ratio * width
  dropout: float = 0.0            # residual and embedding dropout, in training
  norm: str = "pre"               # pre-LN (Xiong et al. 2020) or post-LN (2017)
  attention_impl: str = "xla"     # xla | cudnn (GPU only) | blockwise
  block_size: int = 512           # query and key block of the blockwise path
  capture_weights: bool = False   # sow attention weights into "intermediates"
  remat: bool = False             # recompute each block in the backward pass
                                  # (jax.checkpoint): memory for compute

  def __post_init__(self):
    configs.check_positive("model", width=self.width, num_layers=self.num_layers,
                           num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                           block_size=self.block_size)
    if self.width % self.num_heads:
      raise ConfigError(f"model.width={self.width} must be divisible by "
                        f"model.num_heads={self.num_heads}.")
    configs.check_probability("model", dropout=self.dropout)
    configs.check_choice("model", "norm", self.norm, NORMS)
    configs.check_choice("model", "attention_impl", self.attention_impl,
                         attention.IMPLEMENTATIONS)
    if self.attention_impl == "cudnn" and jax.default_backend() != "gpu":
      raise ConfigError(
          "model.attention_impl='cudnn' needs a GPU, but JAX runs on "
          f"{jax.default_backend()!r}; use 'xla' or 'blockwise'.")

  def check_positional(self, kind: str) -> None:
    """Refuses an unknown `model.positional`, or RoPE on an odd head dimension;
    called by the configs that have the field (the ViT's table is learned)."""
    configs.check_choice("model", "positional", kind, positional.POSITIONAL)
    if kind == "rope" and (self.width // self.num_heads) % 2:
      raise ConfigError(
          "model.positional='rope' rotates pairs of dimensions: the head "
          f"dimension width / num_heads = {self.width // self.num_heads} must "
          "be even.")


class Block(nn.Module):
  """One transformer block: x [B, L, D] -> [B, L, D].

  Attributes:
    config: the model config (widths, norm, dropout, attention settings).
    positional: "rope" and "alibi" act in self-attention; others do nothing here.
    causal: self-attention sees only earlier positions.
    cache_length: KV-cache length for decoding.
  """
  config: AttentionModelConfig
  positional: str
  causal: bool
  cache_length: int = 0

  @nn.compact
  def __call__(self, x_BxLxD, positions_L, context_BxSxD=None,
               context_mask_BxS=None, train: bool = False, decode: bool = False):
    cfg = self.config
    mha = lambda name, pos: attention.MultiHeadAttention(
        cfg.num_heads, cfg.attention_impl, cfg.block_size, pos,
        self.cache_length, cfg.capture_weights, name=name)
    branches = [("self_attention", lambda h: mha("self_attention", self.positional)(
        h, q_pos_L=positions_L, causal=self.causal, decode=decode))]
    if context_BxSxD is not None:
      branches.append(("cross_attention", lambda h: mha("cross_attention", "none")(
          h, context_BxSxD, q_pos_L=positions_L, key_mask_BxS=context_mask_BxS)))
    branches.append(("mlp", lambda h: Mlp(cfg.mlp_ratio, name="mlp")(h)))
    for name, branch in branches:
      norm = nn.LayerNorm(name=f"ln_{name}")
      drop = nn.Dropout(cfg.dropout, deterministic=not train)
      if cfg.norm == "pre":
        x_BxLxD = x_BxLxD + drop(branch(norm(x_BxLxD)))
      else:
        x_BxLxD = norm(x_BxLxD + drop(branch(x_BxLxD)))
    return x_BxLxD


class Mlp(nn.Module):
  """Position-wise feed-forward network: D -> ratio * D -> GELU -> D."""
  ratio: int

  @nn.compact
  def __call__(self, x_BxLxD):
    h = nn.gelu(nn.Dense(self.ratio * x_BxLxD.shape[-1], name="up")(x_BxLxD))
    return nn.Dense(x_BxLxD.shape[-1], name="down")(h)


class Stack(nn.Module):
  """Positional encoding, embedding dropout, N blocks, final LN (pre-LN).

  Attributes:
    config: the model config.
    positional: one of positional.POSITIONAL.
    causal: causal self-attention (a decoder) or not (an encoder).
    max_length: rows of a learned positional table.
    cache_length: KV-cache length for decoding.

  Call: x [B, L, D] (embedded), positions [L] -> [B, L, D].
  """
  config: AttentionModelConfig
  positional: str
  causal: bool
  max_length: int
  cache_length: int = 0

  @nn.compact
  def __call__(self, x_BxLxD, *, positions_L, context_BxSxD=None,
               context_mask_BxS=None, train: bool = False, decode: bool = False):
    cfg = self.config
    x_BxLxD = positional.AddPositional(self.positional, self.max_length,
                                       name="positional")(x_BxLxD, positions_L)
    x_BxLxD = nn.Dropout(cfg.dropout, deterministic=not train)(x_BxLxD)
    # Arguments go by position so that remat can mark train and decode static.
    block = nn.remat(Block, static_argnums=(5, 6)) if cfg.remat else Block
    for i in range(cfg.num_layers):
      x_BxLxD = block(cfg, self.positional, self.causal, self.cache_length,
                      name=f"block_{i}")(
          x_BxLxD, positions_L, context_BxSxD, context_mask_BxS, train, decode)
    if cfg.norm == "pre":
      x_BxLxD = nn.LayerNorm(name="ln_final")(x_BxLxD)
    return x_BxLxD


def decode_positions(module: nn.Module, length: int, decode: bool):
  """Positions [L] of the current chunk: 0..L-1, or under decoding the next L
  positions after those already in the cache (an index kept in "cache")."""
  positions_L = jnp.arange(length)
  if not decode:
    return positions_L
  index = module.variable("cache", "index", lambda: jnp.zeros((), jnp.int32))
  start = index.value
  if not module.is_initializing():
    index.value = start + length
  return start + positions_L


class CausalTransformer(nn.Module):
  """Decoder-only backbone: x [B, L, D] -> [B, L, D], causal, KV-cached decoding."""
  config: "TransformerConfig"
  max_length: int

  @nn.compact
  def __call__(self, x_BxLxD, *, train: bool = False, decode: bool = False):
    positions_L = decode_positions(self, x_BxLxD.shape[1], decode)
    return Stack(self.config, self.config.positional, True, self.max_length,
                 self.max_length, name="decoder")(
        x_BxLxD, positions_L=positions_L, train=train, decode=decode)


class PooledEncoder(nn.Module):
  """Encoder-only backbone for classification: x [B, L, D] -> pooled [B, L, D]
  (the same pooled vector at every position).

  Attributes:
    config: the model config.
    positional: one of positional.POSITIONAL.
    pooling: "cls" (a learned token prepended, its output read) or "mean".
    length: L, the input length.
  """
  config: AttentionModelConfig
  positional: str
  pooling: str
  length: int

  @nn.compact
  def __call__(self, x_BxLxD, *, train: bool = False, decode: bool = False):
    if decode:
      raise ValueError("An encoder-only classifier has no autoregressive decoding.")
    batch, length, width = x_BxLxD.shape
    if self.pooling == "cls":
      cls = self.param("cls", nn.initializers.zeros, (1, 1, width))
      x_BxLxD = jnp.concatenate(
          [jnp.broadcast_to(cls, (batch, 1, width)).astype(x_BxLxD.dtype), x_BxLxD],
          axis=1)
    y = Stack(self.config, self.positional, False, self.length + 1,
              name="encoder")(x_BxLxD, positions_L=jnp.arange(x_BxLxD.shape[1]),
                              train=train)
    pooled_BxD = y[:, 0] if self.pooling == "cls" else jnp.mean(y, axis=1)
    return jnp.broadcast_to(pooled_BxD[:, None, :], (batch, length, width))


@dataclasses.dataclass(frozen=True)
class TransformerConfig(AttentionModelConfig):
  """`config.model` fields of `transformer` (decoder-only for lm, encoder for classify)."""
  positional: str = "sinusoidal"  # none | sinusoidal | learned | rope | alibi
  pooling: str = "cls"            # classify only: cls token or mean pooling

  def __post_init__(self):
    super().__post_init__()
    self.check_positional(self.positional)
    configs.check_choice("model", "pooling", self.pooling, POOLINGS)

  def build(self, io: IOSpec) -> nn.Module:
    if io.kind == "lm":
      positional.check_table(self.positional, io.length, io.eval_lengths)
      backbone = CausalTransformer(self, io.length)
    elif io.kind == "classify":
      positional.check_table(self.positional, io.length + 1,
                             [n + 1 for n in io.eval_lengths])  # + the cls token
      backbone = PooledEncoder(self, self.positional, self.pooling, io.length)
    else:
      raise ConfigError(f"model.name='transformer' serves tasks of kind lm and "
                        f"classify, not {io.kind!r}; use 'transformer_encdec'.")
    return SequenceModel(io=io, width=self.width, backbone=backbone)
