"""The attention models: causality, cached decoding equals the full call, order
blindness without positions, encoder-decoder generation, ViT and the model table."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from seqjax import models
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models import positional
from seqjax.models.encdec import TransformerEncDecConfig
from seqjax.models.transformer import Stack
from seqjax.models.transformer import TransformerConfig
from seqjax.models.vit import ViTConfig
from seqjax.models.vit import patchify

jax.config.update("jax_numpy_rank_promotion", "raise")

TINY = dict(width=8, num_heads=2, num_layers=1, block_size=3)
TWO_LAYERS = dict(TINY, num_layers=2)   # where a leak through layers could hide
LM = IOSpec(kind="lm", length=7, output_size=5, input_vocab=5)
SEQ2SEQ = IOSpec(kind="seq2seq", length=5, output_size=4, input_vocab=6,
                 target_length=6, bos_id=4, eos_id=1)


def stack_grad_after(cfg, causal, t=3, length=7):
  """|d y[:, t] / d x[:, t+1:]| summed, and the same for x[:, :t+1]."""
  stack = Stack(cfg, cfg.positional, causal, length, length)
  x = jax.random.normal(jax.random.key(0), (1, length, cfg.width))
  params = jax.jit(lambda x: stack.init(
      jax.random.key(1), x, positions_L=jnp.arange(length)))(x)
  w = jax.random.normal(jax.random.key(2), (cfg.width,))  # LN outputs sum to 0
  g = jax.jit(jax.grad(lambda x: jnp.sum(stack.apply(
      params, x, positions_L=jnp.arange(length))[:, t] * w[None])))(x)
  return onp.abs(onp.asarray(g[:, t + 1:])).sum(), onp.abs(onp.asarray(g[:, :t + 1])).sum()


@pytest.mark.parametrize("impl,pos", [("xla", "rope"), ("blockwise", "alibi")])
def test_causal_mask_makes_future_gradients_exactly_zero(impl, pos):
  cfg = TransformerConfig(attention_impl=impl, positional=pos, **TWO_LAYERS)
  future, past = stack_grad_after(cfg, causal=True)
  assert future == 0.0
  assert past > 0
  future, _ = stack_grad_after(cfg, causal=False)
  assert future > 0, "without the mask the future reaches the output"


def decode_step_by_step(model, params, full_args, chunks):
  """Runs `model` with decode=True over the chunks of the last argument."""
  *fixed, seq = full_args
  cache = jax.jit(lambda *a: model.init(jax.random.key(0), *a, decode=True))(
      *fixed, seq[:, :1])["cache"]
  outs, start = [], 0
  step = jax.jit(lambda cache, chunk: model.apply(
      {"params": params, "cache": cache}, *fixed, chunk, decode=True,
      mutable=["cache"]))
  for size in chunks:
    out, updated = step(cache, seq[:, start:start + size])
    cache, start = updated["cache"], start + size
    outs.append(out)
  return jnp.concatenate(outs, axis=1)


@pytest.mark.parametrize("pos,impl,chunks", [
    ("sinusoidal", "xla", [1] * 7), ("learned", "xla", [1] * 7),
    ("rope", "blockwise", [1] * 7), ("alibi", "xla", [3, 1, 3])])
def test_cached_decoding_equals_full_forward_decoder_only(pos, impl, chunks):
  model = TransformerConfig(positional=pos, attention_impl=impl,
                            **TWO_LAYERS).build(LM)
  tokens = jax.random.randint(jax.random.key(2), (2, 7), 0, 5)
  params = jax.jit(model.init)(jax.random.key(3), tokens)["params"]
  full = jax.jit(model.apply)({"params": params}, tokens)
  steps = decode_step_by_step(model, params, (tokens,), chunks)
  onp.testing.assert_allclose(steps, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pos", ["rope"])
def test_cached_decoding_equals_full_forward_encdec(pos):
  model = TransformerEncDecConfig(positional=pos, **TINY).build(SEQ2SEQ)
  source = jax.random.randint(jax.random.key(4), (2, 5), 0, 6)
  target = jax.random.randint(jax.random.key(5), (2, 6), 0, 5)
  params = jax.jit(model.init)(jax.random.key(6), source, target)["params"]
  full = jax.jit(model.apply)({"params": params}, source, target)
  assert full.shape == (2, 6, 4)
  steps = decode_step_by_step(model, params, (source, target), [1] * 6)
  onp.testing.assert_allclose(steps, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pos", positional.POSITIONAL)
def test_only_none_is_blind_to_order(pos):
  cfg = TransformerConfig(positional=pos, **TINY)
  stack = Stack(cfg, pos, causal=False, max_length=6)
  x = jax.random.normal(jax.random.key(7), (2, 6, 8))
  perm = onp.array([3, 0, 5, 1, 4, 2])
  params = jax.jit(lambda x: stack.init(
      jax.random.key(8), x, positions_L=jnp.arange(6)))(x)
  apply = jax.jit(lambda x: stack.apply(params, x, positions_L=jnp.arange(6)))
  run = lambda x: onp.asarray(apply(x))
  permuted_out, out_permuted = run(x[:, perm]), run(x)[:, perm]
  if pos == "none":
    onp.testing.assert_allclose(permuted_out, out_permuted, rtol=1e-5, atol=1e-5)
  else:
    assert onp.abs(permuted_out - out_permuted).max() > 1e-3


def test_mean_pooling_classifier_is_permutation_invariant_without_positions():
  io = IOSpec(kind="classify", length=6, output_size=3, input_vocab=5)
  model = TransformerConfig(positional="none", pooling="mean", **TINY).build(io)
  tokens = jax.random.randint(jax.random.key(9), (2, 6), 0, 5)
  params = jax.jit(model.init)(jax.random.key(10), tokens)
  apply = jax.jit(model.apply)
  logits = apply(params, tokens)
  assert logits.shape == (2, 6, 3)
  onp.testing.assert_allclose(logits[:, 0], logits[:, -1])  # same at every position
  onp.testing.assert_allclose(apply(params, tokens[:, ::-1]), logits,
                              rtol=1e-5, atol=1e-5)


def test_cls_classifier_sees_every_position():
  io = IOSpec(kind="classify", length=6, output_size=3, input_vocab=5)
  model = TransformerConfig(positional="learned", pooling="cls", **TINY).build(io)
  x = jax.random.randint(jax.random.key(11), (1, 6), 0, 5)
  params = jax.jit(model.init)(jax.random.key(12), x)
  w = jax.random.normal(jax.random.key(2), (3,))
  grad = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, x)[:, -1] * w[None])))(
      params)
  emb = onp.asarray(grad["params"]["embed"]["embedding"])
  assert (onp.abs(emb[onp.asarray(x[0])]).sum(-1) > 0).all()
  assert grad["params"]["backbone"]["cls"].shape == (1, 1, 8)


def test_vit_classifies_patches():
  images = jax.random.normal(jax.random.key(13), (2, 8, 8, 1))
  patches = patchify(images, 4)
  assert patches.shape == (2, 4, 16)
  onp.testing.assert_array_equal(patches[:, 1], images[:, :4, 4:, :].reshape(2, 16))
  io = IOSpec(kind="classify", length=4, output_size=10, input_features=16)
  model = ViTConfig(**TINY).build(io)
  params = jax.jit(model.init)(jax.random.key(14), patches)["params"]
  assert params["backbone"]["encoder"]["positional"]["table"].shape == (5, 8)
  assert model.apply({"params": params}, patches).shape == (2, 4, 10)


def test_generate_is_greedy_decoding_of_the_teacher_forced_model():
  model = TransformerEncDecConfig(positional="rope", **TINY).build(SEQ2SEQ)
  source = jax.random.randint(jax.random.key(15), (8, 5), 0, 6)
  params = jax.jit(model.init)(jax.random.key(16), source, source[:, :6])["params"]
  tokens = onp.asarray(jax.jit(lambda p, s: model.apply(
      {"params": p}, s, method="generate", max_length=6))(params, source))
  assert tokens.shape == (8, 6) and tokens.dtype == onp.int32
  decoder_inputs = jnp.concatenate(
      [jnp.full((8, 1), SEQ2SEQ.bos_id), tokens[:, :-1]], axis=1)
  argmax = onp.asarray(jnp.argmax(jax.jit(model.apply)(
      {"params": params}, source, decoder_inputs), -1))
  for row, best in zip(tokens, argmax):
    stop = list(row).index(1) if 1 in row else len(row)
    onp.testing.assert_array_equal(row[:stop + 1], best[:stop + 1])


def test_unmasked_decoder_sees_later_targets_but_generates_causally():
  """causal_decoder=False (the causal_mask reproduction) unmasks teacher
  forcing only: logits at t change with a later decoder input, and generation,
  which decodes from a cache, equals the masked model's with the same params."""
  masked = TransformerEncDecConfig(**TINY).build(SEQ2SEQ)
  unmasked = TransformerEncDecConfig(causal_decoder=False, **TINY).build(SEQ2SEQ)
  source = jax.random.randint(jax.random.key(17), (4, 5), 0, 6)
  target = jax.random.randint(jax.random.key(18), (4, 6), 0, 5)
  params = jax.jit(masked.init)(jax.random.key(19), source, target)["params"]
  later = target.at[:, 4].set((target[:, 4] + 1) % 5)   # changes position 4 only
  for model, sees_later in ((masked, False), (unmasked, True)):
    logits = lambda t: onp.asarray(jax.jit(model.apply)({"params": params}, source, t))
    change = onp.abs(logits(target)[:, :4] - logits(later)[:, :4]).max()
    assert (change > 1e-3) if sees_later else change == 0.0
  generate = lambda m: onp.asarray(jax.jit(lambda p, s: m.apply(
      {"params": p}, s, method="generate", max_length=6))(params, source))
  onp.testing.assert_array_equal(generate(unmasked), generate(masked))


def test_sampled_generation_stops_at_eos():
  model = TransformerEncDecConfig(**TINY).build(SEQ2SEQ)
  source = jax.random.randint(jax.random.key(17), (32, 5), 0, 6)
  params = jax.jit(model.init)(jax.random.key(18), source, source[:, :6])["params"]
  tokens = onp.asarray(jax.jit(lambda p, s, r: model.apply(
      {"params": p}, s, method="generate", max_length=6, temperature=2.0, rng=r))(
          params, source, jax.random.key(19)))
  eos = SEQ2SEQ.eos_id
  first = [list(row).index(eos) for row in tokens if eos in row]
  assert any(0 < f < 5 for f in first), "the sample never stops early: no test"
  for row in tokens:
    if eos in row:
      assert (row[list(row).index(eos):] == eos).all()
  with pytest.raises(ValueError, match="rng"):
    model.apply({"params": params}, source, method="generate", max_length=6,
                temperature=1.0)


def test_models_table_and_kind_checks():
  for name in ("transformer", "transformer_encdec", "vit"):
    assert name in models.MODELS
  cfg = models.model_config("transformer", **TINY)
  assert models.build(cfg, LM) is not None
  with pytest.raises(ConfigError, match="transformer_encdec"):
    TransformerConfig(**TINY).build(SEQ2SEQ)
  with pytest.raises(ConfigError, match="seq2seq"):
    TransformerEncDecConfig(**TINY).build(LM)
  with pytest.raises(ConfigError, match="input_features"):
    ViTConfig(**TINY).build(LM)
  with pytest.raises(ConfigError, match="eos_id"):
    TransformerEncDecConfig(**TINY).build(dataclasses.replace(SEQ2SEQ, eos_id=7))
