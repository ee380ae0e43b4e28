"""Autoregressive sampling, written once for every decoder (as the Flax lm1b
example keeps `temperature_sampler.py`).

`decode_loop` is the loop itself: from the logits of the first new token it
picks a token (greedy at temperature 0, else a sample of softmax(logits / T),
optionally from the `top_k` largest logits and the `allowed` ids only), feeds it
to `step`, and repeats for a fixed number of tokens; after an end token every
later token is the end token. Token t is drawn with key t of
`jax.random.split(rng, num_tokens)` folded with the row's index, so two decoders
that compute the same logits draw the same tokens, and a row's tokens do not
depend on the other rows of the batch.

`sample_lm` runs it for a decoder-only model with the `SequenceModel` decode
convention (a "cache" collection under `decode=True`): the prompt is read in one
chunk (prefill), then one token per step from the KV cache or recurrent state.
With `use_cache=False` it recomputes the full causal model over a fixed-length
buffer at every step instead: the reference that the cached path must equal, and
the baseline of the speed comparison.

The encoder-decoders' `generate` (`transformer_encdec`, `rnn_encdec`) call
`sample_from_bos` with their own decoder step. Letters of this file (and of
seqjax.generation), beyond the legend in seqjax.interfaces: Q the prompt length,
N the new tokens.
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp


def choose(logits_BxV, key, temperature: float = 0.0, top_k: int = 0,
           allowed_V=None):
  """The next token [B] int32 from logits [B, V]."""
  logits_BxV = logits_BxV.astype(jnp.float32)
  if allowed_V is not None:
    logits_BxV = jnp.where(allowed_V[None, :], logits_BxV, -jnp.inf)
  if temperature == 0:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  if top_k > logits_BxV.shape[-1]:
    raise ValueError(f"top_k={top_k} exceeds the vocabulary of "
                     f"{logits_BxV.shape[-1]} tokens.")
  if top_k:
    kth_Bx1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
    logits_BxV = jnp.where(logits_BxV < kth_Bx1, -jnp.inf, logits_BxV)
  # A key per row: a sequence's draw does not depend on what else is in the batch.
  keys_B = jax.vmap(jax.random.fold_in, (None, 0))(
      key, jnp.arange(logits_BxV.shape[0]))
  return jax.vmap(jax.random.categorical)(
      keys_B, logits_BxV / temperature).astype(jnp.int32)


def check(temperature: float, top_k: int, rng) -> None:
  if not math.isfinite(temperature) or temperature < 0:
    raise ValueError(f"temperature must be finite and >= 0, got {temperature}.")
  if top_k < 0:
    raise ValueError(f"top_k must be >= 0 (0: no limit), got {top_k}.")
  if temperature > 0 and rng is None:
    raise ValueError("Sampling (temperature > 0) needs an `rng` key.")


def decode_loop(step: Callable, carry, logits_BxV, num_tokens: int, *,
                temperature: float = 0.0, top_k: int = 0, rng=None,
                eos_id: int | None = None, allowed_V=None):
  """Draws `num_tokens` tokens [B, N] int32, feeding each one back.

  Args:
    step: `step(carry, token_B) -> (logits_BxV, carry)`, the logits of the token
      after `token_B`; called N - 1 times (the last token is not fed).
    carry: the decoder's state (a cache, a buffer), passed through `step`.
    logits_BxV: logits of the first new token.
    num_tokens: N, tokens to draw.
    temperature, top_k, allowed_V: see `choose`; rng: a key, needed when T > 0.
    eos_id: an end token; after it every later token is `eos_id`.
  """
  check(temperature, top_k, rng)
  keys = (jnp.zeros((num_tokens,), jnp.uint32) if rng is None
          else jax.random.split(rng, num_tokens))

  def pick(logits_BxV, key, done_B):
    token_B = choose(logits_BxV, key, temperature, top_k, allowed_V)
    if eos_id is None:
      return token_B, done_B
    token_B = jnp.where(done_B, eos_id, token_B).astype(jnp.int32)
    return token_B, done_B | (token_B == eos_id)

  def body(state, key):
    carry, logits_BxV, done_B = state
    token_B, done_B = pick(logits_BxV, key, done_B)
    logits_BxV, carry = step(carry, token_B)
    return (carry, logits_BxV, done_B), token_B

  done_B = jnp.zeros(logits_BxV.shape[:1], bool)
  (_, logits_BxV, done_B), tokens_NxB = jax.lax.scan(
      body, (carry, logits_BxV, done_B), keys[:-1])
  last_B, _ = pick(logits_BxV, keys[-1], done_B)
  return jnp.concatenate([tokens_NxB.T, last_B[:, None]], axis=1)


def sample_from_bos(step: Callable, carry, batch_size: int, num_tokens: int, *,
                    bos_id: int, eos_id: int, temperature: float = 0.0,
                    top_k: int = 0, rng=None):
  """An encoder-decoder's generation, [B, N] int32: its decoder `step` (as in
  `decode_loop`) fed BOS, then each drawn token; EOS after the first EOS."""
  bos_B = jnp.full((batch_size,), bos_id, jnp.int32)
  logits_BxV, carry = step(carry, bos_B)
  return decode_loop(step, carry, logits_BxV, num_tokens, temperature=temperature,
                     top_k=top_k, rng=rng, eos_id=eos_id)


def sample_lm(model, params, prompt_BxQ, num_tokens: int, *,
              temperature: float = 0.0, top_k: int = 0, rng=None,
              eos_id: int | None = None, allowed_V=None, use_cache: bool = True):
  """Continues each prompt [B, Q] by `num_tokens` tokens: returns [B, N] int32.

  `model` is a decoder-only module (`SequenceModel`); Q + N - 1 must not exceed
  its input length (the KV cache length, `io.length`).
  """
  length = model.io.length
  batch, prompt_length = prompt_BxQ.shape
  if prompt_length + num_tokens - 1 > length:
    raise ValueError(f"A prompt of {prompt_length} tokens and {num_tokens} new "
                     f"tokens exceed the model's length {length}.")
  prompt_BxQ = prompt_BxQ.astype(jnp.int32)
  options = dict(temperature=temperature, top_k=top_k, rng=rng, eos_id=eos_id,
                 allowed_V=allowed_V)
  if use_cache:
    shapes = jax.eval_shape(lambda: model.init(
        jax.random.key(0), prompt_BxQ[:, :1], decode=True))["cache"]
    cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def run(cache, tokens_BxL):
      logits_BxLxV, updated = model.apply(
          {"params": params, "cache": cache}, tokens_BxL, decode=True,
          mutable=["cache"])
      return logits_BxLxV[:, -1], updated["cache"]

    logits_BxV, cache = run(cache, prompt_BxQ)
    return decode_loop(lambda c, t: run(c, t[:, None]), cache, logits_BxV,
                       num_tokens, **options)

  # Without a cache: the whole buffer each step; causality makes the tokens after
  # position i irrelevant to the logits at i.
  buffer_BxL = jnp.zeros((batch, length), jnp.int32).at[:, :prompt_length].set(
      prompt_BxQ)
  logits_at = lambda buf, i: jax.lax.dynamic_index_in_dim(
      model.apply({"params": params}, buf), i, axis=1, keepdims=False)

  def step(carry, token_B):
    buffer_BxL, position = carry
    buffer_BxL = jax.lax.dynamic_update_index_in_dim(buffer_BxL, token_B,
                                                     position, axis=1)
    return logits_at(buffer_BxL, position), (buffer_BxL, position + 1)

  return decode_loop(step, (buffer_BxL, jnp.int32(prompt_length)),
                     logits_at(buffer_BxL, prompt_length - 1), num_tokens,
                     **options)
