"""Scaled dot-product attention (Vaswani et al. 2017) and multi-head attention.

  Attention(Q, K, V) = softmax(Q K^T / sqrt(K) + bias, masked) V

Three implementations, chosen by `config.model.attention_impl`, compute the same
function (tested against each other and against a NumPy reference):

  xla        the dense computation compiled by XLA: scores [B, H, L, S] by one
             einsum, masked softmax, one einsum with the values; memory quadratic
             in length. It is the computation of
             `jax.nn.dot_product_attention(implementation="xla")` and is tested
             against it, written out because that function's grouped-query vmap
             makes the attention 20-30% slower forward and backward on XLA:CPU,
             with more temporary memory at long lengths (docs/benchmarks.md).
  cudnn      `jax.nn.dot_product_attention(implementation="cudnn")`: the fused
             flash-attention kernel of cuDNN (Dao et al. 2022); GPU only.
  blockwise  plain JAX, memory linear in length (Rabe & Staats 2021, "Self-attention
             Does Not Need O(n^2) Memory"): queries in blocks (`lax.map`), keys in
             blocks (`lax.scan`) with an online softmax carrying the running max,
             the running sum of weights and the weighted sum of values; both loops
             are rematerialised (`jax.checkpoint`) so the backward pass stores no
             score matrix either.

Masks are described, not materialised, so the blockwise path never builds an
[L, S] array: a key at position n is visible from a query at position m when
  key_mask[b, n] (padding; True = a real token), and n <= m if `causal`.
ALiBi adds -slope_h * |m - n| to the scores. A query that sees no key at all (a
fully padded row) gets the output 0 and no NaN, in every implementation.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.models import positional

IMPLEMENTATIONS = ("xla", "cudnn", "blockwise")


def visible(q_pos_L, k_pos_S, key_mask_BxS, causal: bool):
  """Boolean [B or 1, 1, L, S]: which keys each query may attend to."""
  ok_LxS = jnp.ones((q_pos_L.shape[0], k_pos_S.shape[0]), bool)
  if causal:
    ok_LxS = k_pos_S[None, :] <= q_pos_L[:, None]
  ok = ok_LxS[None, None]
  if key_mask_BxS is not None:
    ok = ok & key_mask_BxS[:, None, None, :]
  return ok


def scores_bias(q_pos_L, k_pos_S, alibi_slopes_H):
  return (None if alibi_slopes_H is None
          else positional.alibi_bias(alibi_slopes_H, q_pos_L, k_pos_S))


def attention_weights(q_BxLxHxK, k_BxSxHxK, q_pos_L, k_pos_S, key_mask_BxS=None,
                      causal=False, alibi_slopes_H=None):
  """The attention weights [B, H, L, S] (rows of a query that sees no key are 0)."""
  scale = 1.0 / math.sqrt(q_BxLxHxK.shape[-1])
  s_BxHxLxS = jnp.einsum("blhk,bshk->bhls", q_BxLxHxK, k_BxSxHxK).astype(
      jnp.float32) * scale
  bias = scores_bias(q_pos_L, k_pos_S, alibi_slopes_H)
  if bias is not None:
    s_BxHxLxS = s_BxHxLxS + bias
  ok = visible(q_pos_L, k_pos_S, key_mask_BxS, causal)
  s_BxHxLxS = jnp.where(ok, s_BxHxLxS, -jnp.inf)
  m = jax.lax.stop_gradient(jnp.max(s_BxHxLxS, axis=-1, keepdims=True))
  p = jnp.exp(s_BxHxLxS - jnp.where(jnp.isfinite(m), m, 0.0))
  total = jnp.sum(p, axis=-1, keepdims=True)
  return p / jnp.where(total > 0, total, 1.0)


def explicit_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, **mask):
  """Attention through its weights; returns (out [B, L, H, K], weights [B, H, L, S])."""
  w_BxHxLxS = attention_weights(q_BxLxHxK, k_BxSxHxK, **mask)
  out = jnp.einsum("bhls,bshk->blhk", w_BxHxLxS.astype(v_BxSxHxK.dtype), v_BxSxHxK)
  return out, w_BxHxLxS


def dense_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, q_pos_L, k_pos_S,
                    key_mask_BxS=None, causal=False, alibi_slopes_H=None,
                    implementation="cudnn"):
  """`jax.nn.dot_product_attention` with our masks; `implementation` cudnn or xla
  (the `xla` implementation of this module is `explicit_attention`; jax's xla
  path serves as its reference in the tests)."""
  ok = visible(q_pos_L, k_pos_S, key_mask_BxS, causal)
  bias = scores_bias(q_pos_L, k_pos_S, alibi_slopes_H)
  if bias is not None:
    bias = bias.astype(q_BxLxHxK.dtype)
  out = jax.nn.dot_product_attention(
      q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, bias=bias, mask=ok,
      implementation=implementation)
  # jax gives a query that sees no key the mean of the values; we give 0.
  seen_BxLx1x1 = jnp.any(ok, axis=-1)[:, 0, :, None, None]
  return jnp.where(seen_BxLx1x1, out, 0.0).astype(q_BxLxHxK.dtype)


def _pad_to(x, axis: int, multiple: int, value=0):
  pad = -x.shape[axis] % multiple
  if pad == 0:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, pad)
  return jnp.pad(x, widths, constant_values=value)


def _blocks(x, axis: int, size: int):
  """Splits `axis` of x into blocks of `size`, the block index first."""
  x = jnp.moveaxis(x, axis, 0)
  x = x.reshape(x.shape[0] // size, size, *x.shape[1:])
  return jnp.moveaxis(x, 1, axis + 1)


def blockwise_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, q_pos_L, k_pos_S,
                        key_mask_BxS=None, causal=False, alibi_slopes_H=None,
                        block_size=512):
  """Memory-efficient attention (Rabe & Staats 2021) with an online softmax.

  Lengths need not divide `block_size`: the tail block is padded with masked keys.
  """
  batch, length, heads, dim = q_BxLxHxK.shape
  size = k_BxSxHxK.shape[1]
  bq, bk = min(block_size, length), min(block_size, size)
  scale = 1.0 / math.sqrt(dim)
  if key_mask_BxS is None:
    key_mask_BxS = jnp.ones((batch, size), bool)
  q_blocks = _blocks(_pad_to(q_BxLxHxK * jnp.asarray(scale, q_BxLxHxK.dtype),
                             1, bq), 1, bq)                      # [Nq, B, bq, H, K]
  qp_blocks = _blocks(_pad_to(q_pos_L, 0, bq), 0, bq)            # [Nq, bq]
  k_blocks = _blocks(_pad_to(k_BxSxHxK, 1, bk), 1, bk)           # [Nk, B, bk, H, K]
  v_blocks = _blocks(_pad_to(v_BxSxHxK, 1, bk), 1, bk)
  kp_blocks = _blocks(_pad_to(k_pos_S, 0, bk), 0, bk)            # [Nk, bk]
  km_blocks = _blocks(_pad_to(key_mask_BxS, 1, bk, False), 1, bk)  # [Nk, B, bk]

  @jax.checkpoint
  def query_block(args):
    q_BxQxHxK, qp_Q = args

    @functools.partial(jax.checkpoint, prevent_cse=False)
    def key_step(carry, kv):
      acc_BxHxQxK, m_BxHxQ, l_BxHxQ = carry
      k_BxCxHxK, v_BxCxHxK, kp_C, km_BxC = kv
      s = jnp.einsum("bqhk,bchk->bhqc", q_BxQxHxK, k_BxCxHxK).astype(jnp.float32)
      bias = scores_bias(qp_Q, kp_C, alibi_slopes_H)
      if bias is not None:
        s = s + bias
      s = jnp.where(visible(qp_Q, kp_C, km_BxC, causal), s, -jnp.inf)
      # The running max only keeps exp() in range: the result does not depend
      # on it, so no gradient flows through it.
      m_new = jax.lax.stop_gradient(jnp.maximum(m_BxHxQ, jnp.max(s, axis=-1)))
      m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
      p = jnp.exp(s - m_safe[..., None])
      correction = jnp.exp(m_BxHxQ - m_safe)
      l_BxHxQ = l_BxHxQ * correction + jnp.sum(p, axis=-1)
      acc_BxHxQxK = acc_BxHxQxK * correction[..., None] + jnp.einsum(
          "bhqc,bchk->bhqk", p.astype(v_BxCxHxK.dtype), v_BxCxHxK
      ).astype(jnp.float32)
      return (acc_BxHxQxK, m_new, l_BxHxQ), None

    q_len = q_BxQxHxK.shape[1]
    init = (jnp.zeros((batch, heads, q_len, dim), jnp.float32),
            jnp.full((batch, heads, q_len), -jnp.inf, jnp.float32),
            jnp.zeros((batch, heads, q_len), jnp.float32))
    (acc, _, total), _ = jax.lax.scan(
        key_step, init, (k_blocks, v_blocks, kp_blocks, km_blocks))
    out_BxHxQxK = acc / jnp.where(total > 0, total, 1.0)[..., None]
    return jnp.swapaxes(out_BxHxQxK, 1, 2).astype(q_BxLxHxK.dtype)

  out_NxBxQxHxK = jax.lax.map(query_block, (q_blocks, qp_blocks))
  out = jnp.moveaxis(out_NxBxQxHxK, 0, 1).reshape(batch, -1, heads, dim)
  return out[:, :length]


def attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, *, impl: str = "xla",
              block_size: int = 512, q_pos_L=None, k_pos_S=None,
              key_mask_BxS=None, causal: bool = False, alibi_slopes_H=None):
  """Scaled dot-product attention by implementation `impl`: [B, L, H, K].

  Args:
    q_BxLxHxK, k_BxSxHxK, v_BxSxHxK: queries, keys and values per head.
    impl: one of IMPLEMENTATIONS.
    block_size: query and key block of the blockwise path.
    q_pos_L, k_pos_S: integer positions (default 0..L-1, 0..S-1), used by the
      causal mask and ALiBi.
    key_mask_BxS: bool, False for padding keys; None means all keys are real.
    causal: a query at position m sees keys at positions n <= m only.
    alibi_slopes_H: ALiBi slopes, or None for no bias.
  """
  mask = dict(
      q_pos_L=jnp.arange(q_BxLxHxK.shape[1]) if q_pos_L is None else q_pos_L,
      k_pos_S=jnp.arange(k_BxSxHxK.shape[1]) if k_pos_S is None else k_pos_S,
      key_mask_BxS=key_mask_BxS, causal=causal, alibi_slopes_H=alibi_slopes_H)
  if impl == "blockwise":
    return blockwise_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK,
                               block_size=block_size, **mask)
  if impl == "xla":
    return explicit_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, **mask)[0]
  return dense_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, implementation=impl,
                         **mask)


class MultiHeadAttention(nn.Module):
  """Multi-head attention: one fused projection to the queries, keys and values
  of all heads, the width split across heads, attention per head, the heads
  concatenated, then the output projection (Vaswani et al. 2017, section 3.2.2).

  Self-attention when `context` is None (one [D, 3, H, K] projection); else
  cross-attention: queries from x, keys and values from `context` (one [D, 2, H, K]
  projection).

  With `decode=True` (self-attention only) keys and values are written into a
  cache [B, max_length, H, K] in the "cache" collection at the positions
  `q_pos_L`, and the queries attend over the whole cache under the causal mask,
  which hides the slots not written yet.

  Attributes:
    num_heads: H; the width D must be divisible by it (K = D / H).
    impl: attention implementation, one of IMPLEMENTATIONS.
    block_size: blocks of the blockwise implementation.
    positional: the model's positional encoding; "rope" rotates q and k of
      self-attention, "alibi" biases its scores.
    max_length: cache length for decoding.
    capture_weights: if True, the weights [B, H, L, S] are sown into the
      "intermediates" collection as "attention_weights" (computed explicitly;
      when False nothing extra is computed).

  Call: x [B, L, D], context [B, S, D] or None -> [B, L, D].
  """
  num_heads: int
  impl: str = "xla"
  block_size: int = 512
  positional: str = "none"
  max_length: int = 0
  capture_weights: bool = False

  @nn.compact
  def __call__(self, x_BxLxD, context_BxSxD=None, *, q_pos_L, k_pos_S=None,
               key_mask_BxS=None, causal: bool = False, decode: bool = False):
    width, heads = x_BxLxD.shape[-1], self.num_heads
    dim = width // heads
    if context_BxSxD is None:
      qkv = nn.DenseGeneral((3, heads, dim), name="qkv")(x_BxLxD)
      q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
      k_pos_S = q_pos_L
      if self.positional == "rope":
        q, k = positional.rope(q, q_pos_L), positional.rope(k, q_pos_L)
      if decode:
        k, v, k_pos_S = self._update_cache(k, v, q_pos_L)
    else:
      q = nn.DenseGeneral((heads, dim), name="q")(x_BxLxD)
      kv = nn.DenseGeneral((2, heads, dim), name="kv")(context_BxSxD)
      k, v = kv[:, :, 0], kv[:, :, 1]
      k_pos_S = jnp.arange(k.shape[1]) if k_pos_S is None else k_pos_S
    slopes = None
    if self.positional == "alibi" and context_BxSxD is None:
      slopes = positional.alibi_slopes(heads)
    mask = dict(q_pos_L=q_pos_L, k_pos_S=k_pos_S, key_mask_BxS=key_mask_BxS,
                causal=causal, alibi_slopes_H=slopes)
    if self.capture_weights:
      out_BxLxHxK, w = explicit_attention(q, k, v, **mask)
      self.sow("intermediates", "attention_weights", w)
    else:
      out_BxLxHxK = attention(q, k, v, impl=self.impl, block_size=self.block_size,
                              **mask)
    return nn.DenseGeneral(width, axis=(-2, -1), name="out")(out_BxLxHxK)

  def _update_cache(self, k_BxLxHxK, v_BxLxHxK, q_pos_L):
    """Writes k, v at positions q_pos_L; returns the whole cache and its positions."""
    batch, _, heads, dim = k_BxLxHxK.shape
    shape = (batch, self.max_length, heads, dim)
    cached_k = self.variable("cache", "key", jnp.zeros, shape, k_BxLxHxK.dtype)
    cached_v = self.variable("cache", "value", jnp.zeros, shape, v_BxLxHxK.dtype)
    start = q_pos_L[0]
    k = jax.lax.dynamic_update_slice(cached_k.value, k_BxLxHxK, (0, start, 0, 0))
    v = jax.lax.dynamic_update_slice(cached_v.value, v_BxLxHxK, (0, start, 0, 0))
    if not self.is_initializing():
      cached_k.value, cached_v.value = k, v
    return k, v, jnp.arange(self.max_length)
