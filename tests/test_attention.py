"""Attention against a NumPy reference written from its equations; the three
implementations agree; masks; RoPE and ALiBi depend on offsets only."""

import math

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from seqjax.errors import ConfigError
from seqjax.models import attention
from seqjax.models import positional
from seqjax.models.transformer import TransformerConfig

jax.config.update("jax_numpy_rank_promotion", "raise")


def reference_attention(q, k, v, key_mask=None, causal=False, slopes=None):
  """softmax(q k^T / sqrt(K) - slope |m - n|) v per batch, head and query, in
  NumPy loops; a query that sees no key gets 0."""
  batch, length, heads, dim = q.shape
  size = k.shape[1]
  out = onp.zeros(q.shape, onp.float64)
  for b in range(batch):
    for h in range(heads):
      for m in range(length):
        ok = [(key_mask is None or key_mask[b, n]) and (not causal or n <= m)
              for n in range(size)]
        if not any(ok):
          continue
        s = onp.array([q[b, m, h] @ k[b, n, h] / math.sqrt(dim)
                       - (0.0 if slopes is None else slopes[h] * abs(m - n))
                       for n in range(size)], onp.float64)
        s = onp.where(ok, s, -onp.inf)
        w = onp.exp(s - s.max())
        w /= w.sum()
        out[b, m, h] = w @ v[b, :, h]
  return out


def qkv(length, size, batch=2, heads=2, dim=4, seed=0):
  rng = onp.random.default_rng(seed)
  return [rng.standard_normal((batch, n, heads, dim)).astype(onp.float32)
          for n in (length, size, size)]


CASES = [  # (L, S, causal, padding, alibi)
    (5, 5, False, False, False),
    (7, 7, True, False, False),
    (6, 9, False, True, False),    # cross-attention, padded keys
    (7, 7, True, True, True),
    (5, 5, False, False, True),
]


@pytest.mark.parametrize("impl", ["xla", "blockwise"])
@pytest.mark.parametrize("length,size,causal,padding,alibi", CASES)
def test_attention_matches_numpy_reference(impl, length, size, causal, padding,
                                           alibi):
  q, k, v = qkv(length, size)
  key_mask = None
  if padding:
    key_mask = onp.ones((2, size), bool)
    key_mask[0, size - 3:] = False
    key_mask[1, 0] = False
  slopes = onp.array([0.25, 0.0625], onp.float32) if alibi else None
  got = attention.attention(
      q, k, v, impl=impl, block_size=3, causal=causal,
      key_mask_BxS=None if key_mask is None else jnp.asarray(key_mask),
      alibi_slopes_H=None if slopes is None else jnp.asarray(slopes))
  want = reference_attention(q, k, v, key_mask, causal, slopes)
  onp.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("length,block_size", [(13, 4), (17, 5), (9, 64)])
def test_blockwise_equals_xla_values_and_gradients(length, block_size):
  q, k, v = qkv(length, length, heads=3, dim=8, seed=length)
  kwargs = dict(causal=True, alibi_slopes_H=positional.alibi_slopes(3))
  def loss(impl, q, k, v):
    out = attention.attention(q, k, v, impl=impl, block_size=block_size, **kwargs)
    return jnp.sum(jnp.sin(out))
  grads = {impl: jax.jit(jax.grad(loss, argnums=(1, 2, 3)), static_argnums=0)(
      impl, q, k, v) for impl in ("xla", "blockwise")}
  onp.testing.assert_allclose(
      attention.attention(q, k, v, impl="blockwise", block_size=block_size, **kwargs),
      attention.attention(q, k, v, impl="xla", **kwargs), rtol=1e-5, atol=1e-6)
  for g_blockwise, g_xla in zip(grads["blockwise"], grads["xla"]):
    onp.testing.assert_allclose(g_blockwise, g_xla, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("length,size,causal,padding,alibi", CASES)
def test_xla_equals_jax_dot_product_attention(length, size, causal, padding, alibi):
  """Our `xla` path against jax.nn.dot_product_attention(implementation="xla"),
  values and gradients (no fully padded row: jax gives those the mean of v)."""
  q, k, v = qkv(length, size, heads=3, dim=8, seed=size)
  key_mask = onp.ones((2, size), bool)
  if padding:
    key_mask[0, size - 3:] = False
  slopes = positional.alibi_slopes(3) if alibi else None
  pos_q, pos_k = jnp.arange(length), jnp.arange(size)
  mask = dict(q_pos_L=pos_q, k_pos_S=pos_k, key_mask_BxS=jnp.asarray(key_mask),
              causal=causal, alibi_slopes_H=slopes)
  ours = lambda q, k, v: attention.attention(q, k, v, impl="xla", **mask)
  def theirs(q, k, v):
    bias = (None if slopes is None
            else positional.alibi_bias(slopes, pos_q, pos_k))
    return jax.nn.dot_product_attention(
        q, k, v, bias=bias, mask=attention.visible(pos_q, pos_k, mask["key_mask_BxS"], causal),
        implementation="xla")
  onp.testing.assert_allclose(ours(q, k, v), theirs(q, k, v), rtol=1e-5, atol=1e-6)
  loss = lambda f: jax.grad(lambda *a: jnp.sum(jnp.sin(f(*a))), argnums=(0, 1, 2))
  for g_ours, g_theirs in zip(loss(ours)(q, k, v), loss(theirs)(q, k, v)):
    onp.testing.assert_allclose(g_ours, g_theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["xla", "blockwise"])
def test_fully_padded_rows_give_zero_and_no_nan(impl):
  q, k, v = qkv(4, 6)
  key_mask = jnp.asarray([[True] * 6, [False] * 6])
  def loss(q, k, v):
    out = attention.attention(q, k, v, impl=impl, block_size=4, key_mask_BxS=key_mask)
    return jnp.sum(out ** 2), out
  grads, out = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(q, k, v)
  assert not onp.isnan(onp.asarray(out)).any()
  onp.testing.assert_array_equal(out[1], 0.0)
  assert onp.abs(out[0]).max() > 0
  for g in grads:
    assert onp.isfinite(onp.asarray(g)).all()


def test_masked_keys_get_zero_weight_in_captured_weights():
  from seqjax.models.attention import MultiHeadAttention  # pylint: disable=import-outside-toplevel
  x = jax.random.normal(jax.random.key(0), (2, 5, 8))
  key_mask = jnp.asarray([[True, False, True, True, False], [True] * 5])
  mha = MultiHeadAttention(num_heads=2, capture_weights=True)
  params = mha.init(jax.random.key(1), x, q_pos_L=jnp.arange(5))
  _, state = mha.apply(params, x, q_pos_L=jnp.arange(5), key_mask_BxS=key_mask,
                       causal=True, mutable=["intermediates"])
  w = onp.asarray(state["intermediates"]["attention_weights"][0])
  assert w.shape == (2, 2, 5, 5)
  onp.testing.assert_array_equal(w[0][:, :, onp.array([1, 4])], 0.0)
  onp.testing.assert_array_equal(onp.triu(onp.ones((5, 5)), 1) * w[1], 0.0)
  onp.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
  # With capture off, nothing is sown.
  off = MultiHeadAttention(num_heads=2)
  _, state = off.apply(params, x, q_pos_L=jnp.arange(5), mutable=["intermediates"])
  assert not state.get("intermediates")


def test_multi_head_attention_equals_per_head_reference():
  """Fused projection, split into heads, attention, concatenation, output map."""
  from seqjax.models.attention import MultiHeadAttention  # pylint: disable=import-outside-toplevel
  x = onp.asarray(jax.random.normal(jax.random.key(2), (2, 4, 6)))
  mha = MultiHeadAttention(num_heads=3)
  params = mha.init(jax.random.key(3), x, q_pos_L=jnp.arange(4))["params"]
  got = mha.apply({"params": params}, x, q_pos_L=jnp.arange(4), causal=True)
  w_qkv = onp.asarray(params["qkv"]["kernel"])          # [D, 3, H, K]
  b_qkv = onp.asarray(params["qkv"]["bias"])            # [3, H, K]
  proj = onp.einsum("bld,dthk->tblhk", x, w_qkv) + b_qkv[:, None, None]
  heads = reference_attention(proj[0], proj[1], proj[2], causal=True)  # [B, L, H, K]
  concat = heads.reshape(2, 4, 6)
  want = concat @ onp.asarray(params["out"]["kernel"]).reshape(6, 6) + onp.asarray(
      params["out"]["bias"])
  onp.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_rope_is_the_rotation_of_pairs():
  x = onp.random.default_rng(0).standard_normal((1, 3, 1, 4)).astype(onp.float32)
  pos = onp.array([0, 1, 5])
  got = onp.asarray(positional.rope(jnp.asarray(x), jnp.asarray(pos)))
  for t, p in enumerate(pos):
    for i, theta in enumerate([1.0, 10000.0 ** (-2 / 4)]):
      a, b = x[0, t, 0, 2 * i], x[0, t, 0, 2 * i + 1]
      c, s = math.cos(p * theta), math.sin(p * theta)
      onp.testing.assert_allclose(got[0, t, 0, 2 * i:2 * i + 2],
                                  [a * c - b * s, a * s + b * c], rtol=1e-5, atol=1e-6)


def test_rope_scores_depend_only_on_offsets():
  q, k, _ = qkv(6, 6, heads=2, dim=8)
  pos = jnp.arange(6)
  def scores(shift):
    rq, rk = positional.rope(jnp.asarray(q), pos + shift), positional.rope(
        jnp.asarray(k), pos + shift)
    return jnp.einsum("blhk,bshk->bhls", rq, rk)
  onp.testing.assert_allclose(scores(0), scores(37), rtol=1e-4, atol=1e-4)
  plain = jnp.einsum("blhk,bshk->bhls", q, k)
  assert onp.abs(onp.asarray(scores(0) - plain)).max() > 1e-2  # rope does act


def test_alibi_scores_depend_only_on_offsets():
  q, k, _ = qkv(5, 5, heads=4)
  slopes = positional.alibi_slopes(4)
  def weights(shift):
    pos = jnp.arange(5) + shift
    return attention.attention_weights(q, k, pos, pos, causal=True,
                                       alibi_slopes_H=slopes)
  onp.testing.assert_allclose(weights(0), weights(100), rtol=1e-6)
  bias = positional.alibi_bias(slopes, jnp.arange(3), jnp.arange(3))
  onp.testing.assert_allclose(bias[0, 1], -0.0625 * onp.abs(
      onp.arange(3)[:, None] - onp.arange(3)[None]), rtol=1e-6)


def test_alibi_slopes_follow_the_paper():
  onp.testing.assert_allclose(positional.alibi_slopes(8),
                              [2.0 ** -i for i in range(1, 9)], rtol=1e-6)
  onp.testing.assert_allclose(positional.alibi_slopes(6),
                              [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3],
                              rtol=1e-6)


def test_sinusoidal_follows_the_paper():
  pe = onp.asarray(positional.sinusoidal(jnp.arange(4), 6))
  for p in range(4):
    for i in range(3):
      onp.testing.assert_allclose(pe[p, 2 * i], math.sin(p / 10000 ** (2 * i / 6)),
                                  rtol=1e-5, atol=1e-6)
      onp.testing.assert_allclose(pe[p, 2 * i + 1],
                                  math.cos(p / 10000 ** (2 * i / 6)),
                                  rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="cuDNN is allowed on GPU")
def test_cudnn_on_cpu_is_a_config_error():
  with pytest.raises(ConfigError, match="attention_impl='cudnn' needs a GPU"):
    TransformerConfig(attention_impl="cudnn")


@pytest.mark.parametrize("fields,match", [
    (dict(attention_impl="flash"), "attention_impl"),
    (dict(positional="relative"), "positional"),
    (dict(width=10, num_heads=4), "divisible"),
    (dict(width=12, num_heads=4, positional="rope"), "even"),
    (dict(norm="sandwich"), "norm"),
    (dict(pooling="max"), "pooling"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_config_values_are_config_errors(fields, match):
  with pytest.raises(ConfigError, match=match):
    TransformerConfig(**fields)
