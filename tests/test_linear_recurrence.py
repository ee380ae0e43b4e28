"""LRU and minGRU: NumPy references from the papers' equations, sequential ==
parallel scans, decoding, causality, the ring initialisation, compile cost."""

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from seqjax import models
from seqjax.interfaces import IOSpec
from seqjax.models import linear_recurrence as lr

import helpers  # pylint: disable=g-bad-import-order
from test_recurrent import input_gradient_mask  # pylint: disable=g-bad-import-order

IO = IOSpec(kind="lm", length=9, output_size=5, input_vocab=5)


def lru_reference(p, x_LxD):
  x = onp.asarray(x_LxD, onp.float64)
  lam = onp.exp(-onp.exp(p["nu_log"]) + 1j * onp.exp(p["theta_log"]))
  gamma = onp.exp(onp.asarray(p["gamma_log"], onp.float64))
  b = onp.asarray(p["B_re"], onp.float64) + 1j * onp.asarray(p["B_im"], onp.float64)
  c = onp.asarray(p["C_re"], onp.float64) + 1j * onp.asarray(p["C_im"], onp.float64)
  h, out = onp.zeros(lam.shape, complex), []
  for x_t in x:
    h = lam * h + gamma * (x_t @ b)
    out.append((h @ c).real + onp.asarray(p["D"], onp.float64) * x_t)
  return onp.stack(out)


def mingru_reference(p, x_LxD):
  x = onp.asarray(x_LxD, onp.float64)
  dense = lambda q, v: v @ onp.asarray(q["kernel"], onp.float64) + onp.asarray(
      q["bias"], onp.float64)
  h, out = onp.zeros(x.shape[-1]), []
  for x_t in x:
    z = 1 / (1 + onp.exp(-dense(p["gate"], x_t)))
    h = (1 - z) * h + z * dense(p["candidate"], x_t)
    out.append(h)
  return onp.stack(out)


def perturbed(params):
  return jax.tree_util.tree_map(
      lambda q: q + 0.05 * jax.random.normal(jax.random.key(3), q.shape), params)


def assert_layer_matches_reference(layer, reference, atol):
  """The layer, on perturbed parameters, equals `reference` on each example."""
  x = jax.random.normal(jax.random.key(0), (2, 11, 4))
  params = perturbed(layer.init(jax.random.key(1), x)["params"])
  got = layer.apply({"params": params}, x)
  for b in range(2):
    onp.testing.assert_allclose(got[b], reference(params, x[b]), rtol=1e-5,
                                atol=atol)


@pytest.mark.parametrize("scan", lr.SCANS)
def test_lru_layer_matches_numpy_reference(scan):
  assert_layer_matches_reference(lr.LRULayer(6, 0.5, 0.99, 6.28, scan),
                                 lru_reference, atol=1e-5)


@pytest.mark.parametrize("scan", lr.SCANS)
def test_mingru_layer_matches_numpy_reference(scan):
  assert_layer_matches_reference(lr.MinGRULayer(scan), mingru_reference, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("length", [1, 2, 7, 64, 65])
def test_every_scan_agrees_with_the_sequential_one(length):
  k = jax.random.split(jax.random.key(length), 3)
  a = jax.random.uniform(k[0], (length, 2, 3), minval=0.5, maxval=1.0)
  b = jax.random.normal(k[1], (length, 2, 3))
  h0 = jax.random.normal(k[2], (2, 3))
  outs = {m: lr.linear_scan(a, b, h0, m) for m in lr.SCANS}
  grads = {m: jax.grad(lambda a, b, h0, m=m: jnp.sum(
      jnp.sin(lr.linear_scan(a, b, h0, m))), argnums=(0, 1, 2))(a, b, h0)
           for m in lr.SCANS}
  for m in ("parallel", "recompute"):
    onp.testing.assert_allclose(outs[m], outs["sequential"], rtol=1e-5, atol=1e-6,
                                err_msg=m)
    for g_other, g_seq in zip(grads[m], grads["sequential"]):
      onp.testing.assert_allclose(g_other, g_seq, rtol=1e-5, atol=1e-6, err_msg=m)


@pytest.mark.parametrize("length", [1, 2, 7, 16, 17, 64, 65])
def test_recompute_scan_differentiates_closed_over_values(length):
  """The custom backward pass of "recompute" returns the gradients of values
  the per-step coefficients close over (Mamba's A) and of the last state."""
  k = jax.random.split(jax.random.key(length), 4)
  a = jax.random.uniform(k[0], (length, 2, 3), minval=0.5, maxval=1.0)
  b = jax.random.normal(k[1], (length, 2, 3))
  h0 = jax.random.normal(k[2], (2, 3))
  w = jax.random.uniform(k[3], (2, 3), minval=0.8, maxval=1.0)

  def loss(a, b, h0, w, method):
    h_last, y = lr.fused_linear_scan(lambda ab: (ab[0] * w, ab[1]), (a, b), h0,
                                     method, lambda h, ab: h * ab[1])
    return jnp.sum(jnp.sin(y)) + jnp.sum(h_last ** 2)

  grads = {m: jax.grad(loss, argnums=(0, 1, 2, 3))(a, b, h0, w, m)
           for m in ("sequential", "recompute")}
  for g_rec, g_seq in zip(grads["recompute"], grads["sequential"]):
    onp.testing.assert_allclose(g_rec, g_seq, rtol=1e-5, atol=1e-6)


def test_ring_initialisation_and_normalisation():
  cfg = models.MODELS["lru"](width=64, r_min=0.4, r_max=0.9, max_phase=1.0)
  p = lr.LRULayer(64, cfg.r_min, cfg.r_max, cfg.max_phase, "parallel").init(
      jax.random.key(0), jnp.ones((1, 2, 8)))["params"]
  modulus = onp.exp(-onp.exp(p["nu_log"]))
  phase = onp.exp(p["theta_log"])
  assert onp.all((modulus >= 0.4 - 1e-6) & (modulus <= 0.9 + 1e-6))
  assert onp.all((phase >= 0) & (phase <= 1.0 + 1e-6))
  onp.testing.assert_allclose(onp.exp(p["gamma_log"]), onp.sqrt(1 - modulus**2),
                              rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lru", "mingru"])
@pytest.mark.parametrize("scan", lr.SCANS)
def test_full_call_equals_decoding_and_is_causal(name, scan):
  model = models.MODELS[name](width=8, num_layers=2, scan=scan).build(IO)
  tokens = jax.random.randint(jax.random.key(0), (2, IO.length), 0, 5)
  params = model.init(jax.random.key(1), tokens)["params"]
  full = model.apply({"params": params}, tokens)
  cache = model.init(jax.random.key(1), tokens[:, :1], decode=True)["cache"]
  outs = []
  for t in range(IO.length):
    out, upd = model.apply({"params": params, "cache": cache}, tokens[:, t:t + 1],
                           decode=True, mutable=["cache"])
    cache = upd["cache"]
    outs.append(out)
  onp.testing.assert_allclose(jnp.concatenate(outs, 1), full, rtol=1e-5, atol=1e-5)
  g = input_gradient_mask(model, params, tokens, t=4)
  assert onp.all(g[5:] == 0.0) and onp.all(g[:5] > 0.0)


@pytest.mark.parametrize("name", ["lru", "mingru"])
@pytest.mark.parametrize("scan, limit", [("sequential", 2), ("recompute", 2),
                                         ("parallel", 3)])
def test_compiled_program_size_vs_length(name, scan, limit):
  """A sequential scan compiles to the same loop at any length; the associative
  scan unrolls log2(L) levels, so its program grows with log L (7 -> 12 levels)."""
  sizes = helpers.compiled_grad_sizes(name, scan, IO, lengths=(64, 4096))
  assert sizes[1] < limit * sizes[0], sizes
