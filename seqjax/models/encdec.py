"""`transformer_encdec`: the encoder-decoder of Vaswani et al. 2017, "Attention Is
All You Need", for tasks of kind seq2seq.

The encoder is a bidirectional stack over the embedded source. The decoder embeds
the target tokens, runs masked (causal) self-attention (unmasked in teacher forcing
with `causal_decoder=False`, a demonstration only), cross-attention whose keys
and values come from the top encoder layer, and the MLP in every block, then
projects to the vocabulary. Training uses teacher forcing; `generate` decodes
autoregressively with a KV cache, greedily or by temperature sampling, and stops
at the end token.

The sequence-to-sequence interface (shared with `rnn_encdec`):
  model.apply({"params": p}, inputs_BxS, decoder_inputs_BxT, train=...) -> [B, T, V]
  model.apply({"params": p}, inputs_BxS, method="generate", max_length=T,
              temperature=0.0, rng=None, top_k=0) -> tokens [B, T] int32
With `decode=True` and the mutable "cache" collection, the call reads the next
chunk of decoder inputs (the encoder is recomputed from `inputs_BxS` each call).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import sampling
from seqjax.interfaces import IOSpec
from seqjax.models.common import check_seq2seq_io
from seqjax.models.transformer import AttentionModelConfig
from seqjax.models.transformer import Stack
from seqjax.models.transformer import decode_positions


class TargetDecoder(nn.Module):
  """Target embedding, causal stack with cross-attention, vocabulary projection.

  Attributes:
    config: the model config.
    vocab: number of target token ids (V plus BOS/EOS if they lie beyond V).
    output_size: V.
    max_length: rows of a learned positional table (T).
    cache_length: KV-cache length for decoding.

  Call: encoded [B, S, D], tokens [B, T] -> logits [B, T, V].
  """
  config: "TransformerEncDecConfig"
  vocab: int
  output_size: int
  max_length: int
  cache_length: int

  @nn.compact
  def __call__(self, encoded_BxSxD, tokens_BxT, *, train: bool = False,
               decode: bool = False):
    cfg = self.config
    x_BxTxD = nn.Embed(self.vocab, cfg.width, name="embed")(tokens_BxT)
    positions_T = decode_positions(self, tokens_BxT.shape[1], decode)
    # Decoding (a cache filled left to right) is causal whatever the config.
    causal = cfg.causal_decoder or decode
    y_BxTxD = Stack(cfg, cfg.positional, causal, self.max_length, self.cache_length,
                    name="decoder")(x_BxTxD, positions_L=positions_T,
                                    context_BxSxD=encoded_BxSxD, train=train,
                                    decode=decode)
    return nn.Dense(self.output_size, name="head")(y_BxTxD)


class TransformerEncDec(nn.Module):
  """Encoder-decoder transformer: source [B, S] (or [B, S, F]) and target [B, T].

  Attributes:
    config: the model config.
    io: the task's IOSpec (kind seq2seq, with target_length, bos_id, eos_id).
  """
  config: "TransformerEncDecConfig"
  io: IOSpec

  def setup(self):
    cfg, io = self.config, self.io
    if io.input_vocab is not None:
      self.source_embed = nn.Embed(io.input_vocab, cfg.width)
    else:
      self.source_embed = nn.Dense(cfg.width)
    self.encoder = Stack(cfg, cfg.positional, False, io.length)
    self.target = TargetDecoder(
        cfg, max(io.output_size, io.bos_id + 1, io.eos_id + 1), io.output_size,
        io.target_length, io.target_length)

  def encode(self, inputs_BxS, *, train: bool = False):
    """Source [B, S] -> top encoder layer [B, S, D]."""
    x_BxSxD = self.source_embed(inputs_BxS)
    return self.encoder(x_BxSxD, positions_L=jnp.arange(x_BxSxD.shape[1]),
                        train=train)

  def __call__(self, inputs_BxS, decoder_inputs_BxT, *, train: bool = False,
               decode: bool = False):
    """Teacher forcing: logits [B, T, V] of the next target token."""
    return self.target(self.encode(inputs_BxS, train=train), decoder_inputs_BxT,
                       train=train, decode=decode)

  def generate(self, inputs_BxS, max_length: int, temperature: float = 0.0,
               rng=None, top_k: int = 0):
    """Autoregressive decoding from BOS: tokens [B, max_length] int32.

    Greedy when `temperature` is 0, else samples softmax(logits / temperature)
    (from the `top_k` largest when given) with `rng` (`seqjax.sampling`). Once a
    sequence has produced EOS, every later token is EOS.
    """
    sampling.check(temperature, top_k, rng)
    if self.config.positional == "learned" and max_length > self.io.target_length:
      raise ValueError(f"max_length={max_length} exceeds the learned positional "
                       f"table of {self.io.target_length} positions.")
    encoded_BxSxD = self.encode(inputs_BxS)
    target, variables = self.target.unbind()
    target = target.clone(cache_length=max_length)
    bos_B = jnp.full((inputs_BxS.shape[0],), self.io.bos_id, jnp.int32)
    shapes = jax.eval_shape(lambda: target.init(
        jax.random.key(0), encoded_BxSxD, bos_B[:, None], decode=True))["cache"]
    cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def step(cache, token_B):
      logits_Bx1xV, updated = target.apply(
          {"params": variables["params"], "cache": cache}, encoded_BxSxD,
          token_B[:, None], decode=True, mutable=["cache"])
      return logits_Bx1xV[:, -1], updated["cache"]

    return sampling.sample_from_bos(
        step, cache, inputs_BxS.shape[0], max_length, bos_id=self.io.bos_id,
        eos_id=self.io.eos_id, temperature=temperature, top_k=top_k, rng=rng)


@dataclasses.dataclass(frozen=True)
class TransformerEncDecConfig(AttentionModelConfig):
  """`config.model` fields of `transformer_encdec`; num_layers is per stack."""
  positional: str = "sinusoidal"  # none | sinusoidal | learned | rope | alibi
  # False: the decoder's self-attention is unmasked in teacher forcing (each
  # position sees the target it predicts), the mistake the causal_mask
  # reproduction demonstrates; generation still decodes causally.
  causal_decoder: bool = True

  def __post_init__(self):
    super().__post_init__()
    self.check_positional(self.positional)

  def build(self, io: IOSpec) -> nn.Module:
    check_seq2seq_io("transformer_encdec", io, instead="transformer")
    return TransformerEncDec(self, io)
