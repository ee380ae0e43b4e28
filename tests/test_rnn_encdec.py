"""rnn_encdec: a NumPy reference of the equations, greedy generation, EOS."""

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from seqjax import models
from seqjax.interfaces import IOSpec

IO = IOSpec(kind="seq2seq", length=6, output_size=7, input_vocab=7,
            target_length=5, bos_id=1, eos_id=2)


def sigmoid(x):
  return 1 / (1 + onp.exp(-x))


def cell_step(cell, p, carry, x):
  """LSTM [i, f, g, o] or GRU [r, z, n] (reset after the matmul), float64."""
  w, u, b = (onp.asarray(p[k], onp.float64) for k in ("w_in", "w_rec", "bias"))
  if cell == "lstm":
    c, h = carry
    i, f, g, o = onp.split(x @ w + b + h @ u, 4)
    c = sigmoid(f) * c + sigmoid(i) * onp.tanh(g)
    h = sigmoid(o) * onp.tanh(c)
    return (c, h), h
  h = carry
  xr, xz, xn = onp.split(x @ w + b, 3)
  hr, hz, hn = onp.split(h @ u + onp.asarray(p["b_rec"], onp.float64), 3)
  r, z = sigmoid(xr + hr), sigmoid(xz + hz)
  h = (1 - z) * onp.tanh(xn + r * hn) + z * h
  return h, h


def reference(p, source, decoder_inputs, cell, attention):
  f64 = lambda x: onp.asarray(x, onp.float64)
  width = p["w_rec"].shape[0]
  zero = onp.zeros(width)
  carry = (zero, zero) if cell == "lstm" else zero
  states = []
  for token in source:
    carry, h = cell_step(cell, p["encoder"], carry,
                         f64(p["source_embed"]["embedding"])[token])
    states.append(h)
  states = onp.stack(states)
  logits = []
  for token in decoder_inputs:
    s = carry[1] if cell == "lstm" else carry
    read = f64(p["target_embedding"])[token]
    if attention:
      e = onp.tanh(s @ f64(p["att_q"]) + states @ f64(p["att_k"]) + f64(p["att_b"]))
      e = e @ f64(p["att_v"])
      alpha = onp.exp(e - e.max()) / onp.exp(e - e.max()).sum()
      context = alpha @ states
      read = onp.concatenate([read, context])
    carry, s = cell_step(cell, p, carry, read)
    out = onp.concatenate([s, context]) if attention else s
    logits.append(out @ f64(p["head_w"]) + f64(p["head_b"]))
  return onp.stack(logits)


def setup(cell="lstm", attention=True, seed=0):
  model = models.MODELS["rnn_encdec"](width=8, cell=cell, attention=attention).build(IO)
  source = jax.random.randint(jax.random.key(seed), (3, IO.length), 3, 7)
  decoder_inputs = jax.random.randint(jax.random.key(seed + 1), (3, 5), 0, 7)
  params = model.init(jax.random.key(2), source, decoder_inputs)["params"]
  params = jax.tree_util.tree_map(  # non-zero biases exercise every term
      lambda q: q + 0.1 * jax.random.normal(jax.random.key(3), q.shape), params)
  return model, params, source, decoder_inputs


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("attention", [True, False])
def test_teacher_forcing_matches_numpy_reference(cell, attention):
  model, params, source, decoder_inputs = setup(cell, attention)
  got = model.apply({"params": params}, source, decoder_inputs)
  for b in range(3):
    want = reference(params, source[b], decoder_inputs[b], cell, attention)
    onp.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-5)


def test_attention_weights_sum_to_one():
  model, params, source, decoder_inputs = setup()
  _, state = model.apply({"params": params}, source, decoder_inputs,
                         mutable=["intermediates"])
  weights, = state["intermediates"]["attention_weights"]
  assert weights.shape == (3, 5, IO.length)
  onp.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_generate_is_greedy_decoding_of_the_teacher_forced_model(cell):
  model, params, source, _ = setup(cell)
  tokens = model.apply({"params": params}, source, method="generate", max_length=5)
  # Feed the model its own outputs: each greedy token is the argmax given the
  # previous ones, until EOS.
  fed = jnp.concatenate([jnp.full((3, 1), IO.bos_id), tokens[:, :-1]], axis=1)
  logits = model.apply({"params": params}, source, fed)
  greedy = onp.asarray(jnp.argmax(logits, -1))
  tokens = onp.asarray(tokens)
  for b in range(3):
    end = next((t for t in range(5) if tokens[b, t] == IO.eos_id), 4)
    onp.testing.assert_array_equal(tokens[b, :end + 1], greedy[b, :end + 1])


@pytest.mark.slow
def test_generation_stops_at_eos():
  model, params, source, _ = setup("gru")
  # Make EOS likely but not certain, so that sequences end at different steps.
  params = dict(params, head_b=params["head_b"].at[IO.eos_id].add(1.5))
  tokens = onp.asarray(model.apply({"params": params}, jnp.tile(source, (8, 1)),
                                   method="generate", max_length=5, temperature=1.0,
                                   rng=jax.random.key(0)))
  first_eos = [list(row).index(IO.eos_id) for row in tokens if IO.eos_id in row]
  assert any(0 < t < 4 for t in first_eos), "EOS never came mid-sequence"
  for row in tokens:
    if IO.eos_id in row:
      assert all(t == IO.eos_id for t in row[list(row).index(IO.eos_id):])
