"""Recurrent models: cells against NumPy references written from the equations,
full call == step-by-step decoding, causality, remat, compile cost vs length."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from seqjax import models
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models import recurrent

IO = IOSpec(kind="lm", length=9, output_size=5, input_vocab=5)
PER_POSITION = {
    "window": dict(width=8, window=3),
    "rnn": dict(width=8, num_layers=2, residual=True, layer_norm=True),
    "lstm": dict(width=8, num_layers=2),
    "gru": dict(width=8, num_layers=2),
}


def sigmoid(x):
  return 1.0 / (1.0 + onp.exp(-x))


def reference(name, p, x_LxD, act="tanh"):
  """The textbook equations, one time step at a time, in float64 NumPy."""
  w, u, b = (onp.asarray(p[k], onp.float64) for k in ("w_in", "w_rec", "bias"))
  h_dim = u.shape[0]
  h, c, out = onp.zeros(h_dim), onp.zeros(h_dim), []
  for x in onp.asarray(x_LxD, onp.float64):
    if name == "lstm":
      z = x @ w + b + h @ u
      i, f, g, o = (z[k * h_dim:(k + 1) * h_dim] for k in range(4))
      c = sigmoid(f) * c + sigmoid(i) * onp.tanh(g)
      h = sigmoid(o) * onp.tanh(c)
    elif name == "gru":
      c_rec = onp.asarray(p["b_rec"], onp.float64)
      xs = [x @ w[:, k * h_dim:(k + 1) * h_dim] + b[k * h_dim:(k + 1) * h_dim]
            for k in range(3)]
      hs = [h @ u[:, k * h_dim:(k + 1) * h_dim] + c_rec[k * h_dim:(k + 1) * h_dim]
            for k in range(3)]
      r, z = sigmoid(xs[0] + hs[0]), sigmoid(xs[1] + hs[1])
      n = onp.tanh(xs[2] + r * hs[2])
      h = (1 - z) * n + z * h
    else:
      pre = x @ w + b + h @ u
      h = onp.tanh(pre) if act == "tanh" else onp.maximum(pre, 0)
    out.append(h)
  return onp.stack(out)


@pytest.mark.parametrize("scan_chunk", [1, 3, 8])  # length 7: all chunks, mixed, tail only
@pytest.mark.parametrize("name, act", [("lstm", "tanh"), ("gru", "tanh"),
                                       ("rnn", "tanh"), ("rnn", "relu")])
def test_cell_matches_numpy_reference(name, act, scan_chunk):
  cfg = models.MODELS[name](width=6, **({"activation": act} if name == "rnn" else {}))
  layer = recurrent.RecurrentLayer(6, cfg.cell(), scan_chunk=scan_chunk)
  x = jax.random.normal(jax.random.key(0), (2, 7, 4))
  params = layer.init(jax.random.key(1), x)["params"]
  # Non-zero biases, so that every bias term is exercised.
  params = jax.tree_util.tree_map(
      lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  got = layer.apply({"params": params}, x)
  for b in range(2):
    want = reference(name, params, x[b], act)
    onp.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 7, 16])
def test_chunked_scan_equals_one_scan_over_the_projected_inputs(length, reverse):
  cell = models.MODELS["lstm"]().cell()
  k = jax.random.split(jax.random.key(0), 3)
  params = {"w_rec": 0.3 * jax.random.normal(k[0], (5, 20))}
  w_in = 0.3 * jax.random.normal(k[1], (3, 20))
  x_LxBxD = jax.random.normal(k[2], (length, 2, 3))
  step = lambda c, xw: cell.step(params, c, xw)
  carry = cell.init_carry(2, 5, jnp.float32)
  want_carry, want = jax.lax.scan(step, carry, x_LxBxD @ w_in, reverse=reverse)
  for chunk in (1, 2, 3, 8, 40):
    got_carry, got = recurrent.chunked_scan(step, carry, x_LxBxD, lambda x: x @ w_in,
                                            chunk, reverse)
    onp.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    for g, w in zip(got_carry, want_carry):
      onp.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_lstm_forget_bias_and_orthogonal_init():
  layer = recurrent.RecurrentLayer(4, models.MODELS["lstm"](forget_bias=1.0).cell())
  p = layer.init(jax.random.key(0), jnp.ones((1, 2, 3)))["params"]
  onp.testing.assert_array_equal(p["bias"], [0] * 4 + [1] * 4 + [0] * 8)
  for k in range(4):
    block = p["w_rec"][:, 4 * k:4 * k + 4]
    onp.testing.assert_allclose(block.T @ block, onp.eye(4), atol=1e-6)
  rnn = recurrent.RecurrentLayer(4, models.MODELS["rnn"](rec_scale=0.5).cell())
  u = rnn.init(jax.random.key(0), jnp.ones((1, 2, 3)))["params"]["w_rec"]
  onp.testing.assert_allclose(u.T @ u, 0.25 * onp.eye(4), atol=1e-6)


def build(name, **extra):
  model = models.MODELS[name](**{**PER_POSITION[name], **extra}).build(IO)
  tokens = jax.random.randint(jax.random.key(0), (2, IO.length), 0, 5)
  params = model.init(jax.random.key(1), tokens)["params"]
  return model, params, tokens


@pytest.mark.parametrize("name", sorted(PER_POSITION))
def test_full_call_equals_step_by_step_decoding(name):
  model, params, tokens = build(name)
  full = model.apply({"params": params}, tokens)
  cache = model.init(jax.random.key(1), tokens[:, :1], decode=True)["cache"]
  step = jax.jit(lambda c, t: model.apply({"params": params, "cache": c}, t,
                                          decode=True, mutable=["cache"]))
  outs = []
  for t in range(IO.length):
    out, cache = step(cache, tokens[:, t:t + 1])
    cache = cache["cache"]
    outs.append(out)
  onp.testing.assert_allclose(jnp.concatenate(outs, 1), full, rtol=1e-5, atol=1e-6)


def input_gradient_mask(model, params, tokens, t):
  """|d out_t / d embedding_s| > 0 for each position s."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens))
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape), shapes["perturbations"])
  grad = jax.grad(lambda z: model.apply({"params": params, "perturbations": z},
                                        tokens)[:, t].sum())(zeros)["embedded"]
  return onp.asarray(jnp.abs(grad).sum((0, 2)))


@pytest.mark.parametrize("name", sorted(PER_POSITION))
def test_causal_gradient_after_t_is_exactly_zero(name):
  model, params, tokens = build(name)
  g = input_gradient_mask(model, params, tokens, t=4)
  # A recurrence sees all of the past; the window model only its last k steps.
  first = 4 - PER_POSITION[name]["window"] + 1 if name == "window" else 0
  assert onp.all(g[5:] == 0.0)
  assert onp.all(g[first:5] > 0.0)
  assert onp.all(g[:first] == 0.0)


def test_bidirectional_sees_the_future_and_is_refused_for_lm():
  cfg = models.MODELS["gru"](width=8, bidirectional=True)
  with pytest.raises(ConfigError, match="bidirectional"):
    cfg.build(IO)
  encoder_io = dataclasses.replace(IO, kind="classify")
  model = cfg.build(encoder_io)
  tokens = jax.random.randint(jax.random.key(0), (2, IO.length), 0, 5)
  params = model.init(jax.random.key(1), tokens)["params"]
  g = input_gradient_mask(model, params, tokens, t=4)
  assert onp.all(g[5:] > 0.0)  # the check above can fail


def test_scan_chunk_changes_speed_not_results():
  encoder_io = dataclasses.replace(IO, kind="classify")
  tokens = jax.random.randint(jax.random.key(0), (2, IO.length), 0, 5)
  outs = []
  for chunk in (1, 4, 9, 64):  # length 9: all chunks, chunks + a tail, hoisted
    cfg = models.MODELS["lstm"](width=8, num_layers=2, bidirectional=True,
                                scan_chunk=chunk)
    model = cfg.build(encoder_io)
    params = model.init(jax.random.key(1), tokens)["params"]
    outs.append(model.apply({"params": params}, tokens))
  for out in outs[1:]:
    onp.testing.assert_allclose(out, outs[0], rtol=1e-5, atol=1e-6)
  with pytest.raises(ConfigError, match="scan_chunk must be positive, got 0"):
    models.MODELS["gru"](scan_chunk=0)


@pytest.mark.slow
def test_remat_gives_the_same_gradients():
  model, params, tokens = build("lstm")
  remat, _, _ = build("lstm", remat=True)
  loss = lambda m: jax.grad(lambda p: jnp.sum(m.apply({"params": p}, tokens) ** 2))(
      params)
  for a, b in zip(jax.tree_util.tree_leaves(loss(remat)),
                  jax.tree_util.tree_leaves(loss(model))):
    onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "window"])
def test_compiled_program_does_not_grow_with_length(name):
  sizes = []
  for length in (64, 4096):
    io = dataclasses.replace(IO, length=length)
    model = models.MODELS[name](**PER_POSITION[name]).build(io)
    tokens = jnp.zeros((2, length), jnp.int32)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens))["params"]
    grad = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({"params": p}, tokens))))
    sizes.append(len(grad.lower(params).as_text()))
  assert sizes[1] < 2 * sizes[0], sizes
