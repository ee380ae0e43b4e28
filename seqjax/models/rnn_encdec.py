"""`rnn_encdec`: the classic sequence-to-sequence model (Sutskever, Vinyals & Le
2014) with optional additive attention (Bahdanau, Cho & Bengio 2015).

An LSTM or GRU encoder reads the embedded source; its final state starts the
decoder, a cell of the same kind. With `attention=True`, at every target step t
  e_tj = v^T tanh(W_q s_{t-1} + W_k h_j + b),  alpha_t = softmax_j(e_t),
  c_t = sum_j alpha_tj h_j,
the decoder cell reads [embedding(y_{t-1}); c_t] and the output layer reads
[s_t; c_t]; without attention the decoder's only view of the source is the
encoder's final state. Cells and gate layouts are those of recurrent.py.

It shares its interface with `transformer_encdec`:
  model.apply({"params": p}, inputs_BxS, decoder_inputs_BxT, train=...) -> [B, T, V]
  model.apply({"params": p}, inputs_BxS, method="generate", max_length=T,
              temperature=0.0, rng=None, top_k=0) -> tokens [B, T] int32
`generate` scans `max_length` steps from BOS, greedily or by temperature
sampling; once a sequence has produced EOS every later token is EOS. Teacher
forcing also sows the attention weights [B, T, S] into "intermediates".

Shapes (legend in seqjax.interfaces; R the recurrent hidden size, here `width`):
also I, what the decoder cell reads (R, or 2R with the attention's context).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax import sampling
from seqjax.interfaces import IOSpec
from seqjax.models import recurrent
from seqjax.models.common import check_seq2seq_io

CELLS = {"lstm": recurrent.LSTMConfig, "gru": recurrent.GRUConfig}


@dataclasses.dataclass(frozen=True)
class RNNEncDecConfig:
  """`config.model` fields of `rnn_encdec`."""
  width: int = 128        # embedding and hidden size of encoder and decoder
  cell: str = "lstm"      # lstm | gru, for both encoder and decoder
  attention: bool = True  # additive (Bahdanau) attention over encoder states
  dropout: float = 0.0    # dropout on the decoder's outputs, in training

  def __post_init__(self):
    configs.check_positive("model", width=self.width)
    configs.check_choice("model", "cell", self.cell, tuple(CELLS))
    configs.check_probability("model", dropout=self.dropout)

  def build(self, io: IOSpec) -> nn.Module:
    check_seq2seq_io("rnn_encdec", io, instead="lstm")
    return RNNEncDec(self, io)


class RNNEncDec(nn.Module):
  """Encoder-decoder RNN: source [B, S] (or [B, S, F]) and target [B, T]."""
  config: RNNEncDecConfig
  io: IOSpec

  def setup(self):
    cfg, io, h = self.config, self.io, self.config.width
    self.cell = CELLS[cfg.cell]().cell()
    vocab = max(io.output_size, io.bos_id + 1, io.eos_id + 1)
    self.source_embed = (nn.Embed(io.input_vocab, h) if io.input_vocab is not None
                         else nn.Dense(h))
    self.encoder = recurrent.RecurrentLayer(h, self.cell, return_carry=True)
    self.embedding = self.param("target_embedding",
                                nn.initializers.normal(stddev=1.0), (vocab, h))
    read = 2 * h if cfg.attention else h
    self.w_in, self.rec_params, self.bias = recurrent.cell_params(
        self, self.cell, read, h)
    if cfg.attention:
      self.att_q = self.param("att_q", nn.initializers.glorot_uniform(), (h, h))
      self.att_k = self.param("att_k", nn.initializers.glorot_uniform(), (h, h))
      self.att_b = self.param("att_b", nn.initializers.zeros, (h,))
      self.att_v = self.param("att_v", nn.initializers.normal(stddev=h**-0.5), (h,))
    self.head_w = self.param("head_w", nn.initializers.glorot_uniform(),
                             (read, io.output_size))
    self.head_b = self.param("head_b", nn.initializers.zeros, (io.output_size,))
    self.dropout = nn.Dropout(cfg.dropout)

  def encode(self, inputs_BxS):
    """Source -> (final encoder state, encoder states [B, S, R])."""
    return self.encoder(self.source_embed(inputs_BxS))

  def _step(self, encoded_BxSxR, keys_BxSxR, carry, emb_BxR):
    """One decoder step: (carry, embedded token) -> (carry, (logits, weights))."""
    s_BxR = carry[1] if isinstance(carry, tuple) else carry
    weights_BxS = jnp.zeros(encoded_BxSxR.shape[:2], emb_BxR.dtype)
    read_BxI = emb_BxR
    if self.config.attention:
      scores_BxS = jnp.tanh(keys_BxSxR + (s_BxR @ self.att_q)[:, None]) @ self.att_v
      weights_BxS = jax.nn.softmax(scores_BxS.astype(jnp.float32), axis=-1)
      context_BxR = jnp.einsum("bs,bsh->bh", weights_BxS.astype(encoded_BxSxR.dtype),
                               encoded_BxSxR)
      read_BxI = jnp.concatenate([emb_BxR, context_BxR], axis=-1)
    carry, s_BxR = self.cell.step(dict(self.rec_params), carry,
                                  read_BxI @ self.w_in + self.bias[None])
    out_BxI = (jnp.concatenate([s_BxR, context_BxR], axis=-1)
               if self.config.attention else s_BxR)
    return carry, (out_BxI, weights_BxS)

  def _keys(self, encoded_BxSxR):
    if not self.config.attention:
      return encoded_BxSxR
    return encoded_BxSxR @ self.att_k + self.att_b[None, None]

  def __call__(self, inputs_BxS, decoder_inputs_BxT, *, train: bool = False,
               decode: bool = False):
    """Teacher forcing: logits [B, T, V] of the next target token."""
    if decode:
      raise ValueError("rnn_encdec decodes with `generate`, not decode=True.")
    carry, encoded_BxSxR = self.encode(inputs_BxS)
    keys = self._keys(encoded_BxSxR)
    emb_TxBxR = jnp.swapaxes(self.embedding[decoder_inputs_BxT], 0, 1)
    step = lambda c, e: self._step(encoded_BxSxR, keys, c, e)
    _, (out_TxBxI, weights_TxBxS) = jax.lax.scan(step, carry, emb_TxBxR)
    self.sow("intermediates", "attention_weights", jnp.swapaxes(weights_TxBxS, 0, 1))
    out_BxTxI = self.dropout(jnp.swapaxes(out_TxBxI, 0, 1), deterministic=not train)
    return out_BxTxI @ self.head_w + self.head_b[None, None]

  def generate(self, inputs_BxS, max_length: int, temperature: float = 0.0,
               rng=None, top_k: int = 0):
    """Decoding from BOS: tokens [B, max_length] int32, EOS after the first EOS
    (the loop of `seqjax.sampling`)."""
    sampling.check(temperature, top_k, rng)
    carry, encoded_BxSxR = self.encode(inputs_BxS)
    keys = self._keys(encoded_BxSxR)

    def step(carry, token_B):
      carry, (out_BxI, _) = self._step(encoded_BxSxR, keys, carry,
                                       self.embedding[token_B])
      return out_BxI @ self.head_w + self.head_b[None], carry

    return sampling.sample_from_bos(
        step, carry, inputs_BxS.shape[0], max_length, bos_id=self.io.bos_id,
        eos_id=self.io.eos_id, temperature=temperature, top_k=top_k, rng=rng)
