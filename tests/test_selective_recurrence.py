"""Mamba and the RG-LRU (Hawk): float64 NumPy references written from the papers'
equations, sequential == parallel scans, decoding, causality, initialisation,
compile cost, remat, the bfloat16 policy and the decay diagnostics."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from seqjax import diagnostics
from seqjax import models
from seqjax import precision
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models import linear_recurrence as lr
from seqjax.models import selective

import helpers  # pylint: disable=g-bad-import-order
from test_recurrent import input_gradient_mask  # pylint: disable=g-bad-import-order

IO = IOSpec(kind="lm", length=9, output_size=5, input_vocab=5)
NAMES = ("mamba", "rglru")
TINY = {"mamba": dict(width=8, num_layers=2, state_size=4),
        "rglru": dict(width=8, num_layers=2, rnn_width=6, mlp_ratio=2)}


# ---- References: one time step at a time, float64 ----------------------------

def f64(x):
  return onp.asarray(x, onp.float64)


def sigmoid(x):
  return 1 / (1 + onp.exp(-x))


def silu(x):
  return x * sigmoid(x)


def softplus(x):
  return onp.log1p(onp.exp(x))


def gelu(x):  # the tanh form, jax.nn.gelu's default (as in recurrentgemma)
  return 0.5 * x * (1 + onp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def rms_norm(p, x):
  return x / onp.sqrt(onp.mean(x ** 2, -1, keepdims=True) + 1e-6) * f64(p["scale"])


def dense(p, x):
  return x @ f64(p["kernel"]) + (f64(p["bias"]) if "bias" in p else 0.0)


def causal_conv(p, x_LxE):
  w, b = f64(p["kernel"]), f64(p["bias"])
  taps = w.shape[0]
  padded = onp.concatenate([onp.zeros((taps - 1, x_LxE.shape[1])), x_LxE])
  return onp.stack([b + sum(w[j] * padded[t + j] for j in range(taps))
                    for t in range(len(x_LxE))])


def mamba_reference(p, u_LxD):
  """Gu & Dao 2023, section 3 / Algorithm 2, for one sequence."""
  xz = u_LxD @ f64(p["in_proj"]["kernel"])
  e = xz.shape[1] // 2
  x, z = xz[:, :e], xz[:, e:]
  x = silu(causal_conv(p["conv"], x))
  a = -onp.exp(f64(p["A_log"]))                      # [E, N]
  n, r = a.shape[1], p["dt_proj"].shape[0]
  h, out = onp.zeros((e, n)), []
  for t in range(len(x)):
    proj = x[t] @ f64(p["x_proj"]["kernel"])
    dt, b, c = proj[:r], proj[r:r + n], proj[r + n:]
    delta = softplus(dt @ f64(p["dt_proj"]) + f64(p["dt_bias"]))   # [E]
    h = onp.exp(delta[:, None] * a) * h + (delta * x[t])[:, None] * b[None, :]
    y = h @ c + f64(p["D"]) * x[t]
    out.append((y * silu(z[t])) @ f64(p["out_proj"]["kernel"]))
  return onp.stack(out)


def rglru_reference(p, x_LxE, c=8.0):
  """De et al. 2024, section 2.4: a_t = sigmoid(Lambda)^(c r_t), directly."""
  h, out = onp.zeros(x_LxE.shape[1]), []
  a_base = sigmoid(f64(p["Lambda"]))
  for x in x_LxE:
    r = sigmoid(dense(p["recurrence_gate"], x))
    i = sigmoid(dense(p["input_gate"], x))
    a = a_base ** (c * r)
    h = a * h + onp.sqrt(1 - a ** 2) * (i * x)
    out.append(h)
  return onp.stack(out)


def hawk_block_reference(p, x_LxD, c=8.0):
  q = p["temporal"]
  h = rms_norm(p["norm_temporal"], x_LxD)
  y = gelu(dense(q["linear_y"], h))
  rec = rglru_reference(q["rg_lru"], causal_conv(q["conv"], dense(q["linear_x"], h)), c)
  x_LxD = x_LxD + dense(q["linear_out"], rec * y)
  m = p["mlp"]
  h = rms_norm(p["norm_mlp"], x_LxD)
  return x_LxD + dense(m["down"], gelu(dense(m["gate"], h)) * dense(m["up"], h))


def backbone_reference(name, p, x_LxD):
  x = f64(x_LxD)
  for i in range(len([k for k in p if k.startswith("block_")])):
    q = p[f"block_{i}"]
    if name == "mamba":
      x = x + mamba_reference(q["mamba"], rms_norm(q["norm"], x))
    else:
      x = hawk_block_reference(q, x)
  return rms_norm(p["norm_final"], x)


def perturbed(params, scale=0.3):
  """Every parameter moved (biases, D, A_log, Lambda, norm scales), and the
  delta bias drawn near 0 so that delta ~ softplus(N(0, 1)) is far from its
  initial [1e-3, 0.1] and exp(delta A) far from 1."""
  leaves, tree = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(jax.random.key(3), len(leaves))
  out = []
  for (path, x), k in zip(leaves, keys):
    noise = jax.random.normal(k, x.shape)
    name = str(path[-1])
    out.append(noise if "dt_bias" in name else x + scale * noise)
  return jax.tree_util.tree_unflatten(tree, out)


def mamba_layer(scan, dt_rank=2):
  return selective.MambaLayer(inner=6, state_size=3, dt_rank=dt_rank, conv_width=4,
                              dt_min=1e-3, dt_max=0.1, dt_init_floor=1e-4, scan=scan)


# ---- The recurrences and blocks against the references -----------------------

@pytest.mark.parametrize("scan", lr.SCANS)
def test_mamba_layer_matches_numpy_reference(scan):
  layer = mamba_layer(scan)
  u = jax.random.normal(jax.random.key(0), (2, 11, 4))
  params = perturbed(layer.init(jax.random.key(1), u)["params"])
  delta = jax.nn.softplus(params["dt_bias"])
  assert float(delta.min()) < 0.5 < float(delta.max())  # exp(delta A) far from 1
  got = layer.apply({"params": params}, u)
  for b in range(2):
    onp.testing.assert_allclose(got[b], mamba_reference(params, f64(u[b])),
                                rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scan", lr.SCANS)
def test_rglru_layer_matches_numpy_reference(scan):
  layer = selective.RGLRULayer(c=8.0, a_min=0.9, a_max=0.999, scan=scan)
  x = jax.random.normal(jax.random.key(0), (2, 11, 5))
  params = perturbed(layer.init(jax.random.key(1), x)["params"], scale=0.5)
  got = layer.apply({"params": params}, x)
  for b in range(2):
    onp.testing.assert_allclose(got[b], rglru_reference(params, f64(x[b])),
                                rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scan", lr.SCANS)
@pytest.mark.parametrize("name", NAMES)
def test_backbone_matches_numpy_reference(name, scan):
  """The whole residual stack: norms, convolutions, branches, MLP, final norm."""
  backbone = selective.SelectiveStack(models.MODELS[name](**TINY[name], scan=scan))
  x = jax.random.normal(jax.random.key(0), (2, 10, 8))
  params = perturbed(backbone.init(jax.random.key(1), x)["params"], scale=0.2)
  got = backbone.apply({"params": params}, x)
  for b in range(2):
    onp.testing.assert_allclose(got[b], backbone_reference(name, params, x[b]),
                                rtol=1e-5, atol=1e-5)


def test_causal_conv_decoding_carries_the_window():
  conv = selective.CausalConv(3, nn_normal(), nn_normal())
  x = jax.random.normal(jax.random.key(0), (2, 7, 4))
  params = conv.init(jax.random.key(1), x)["params"]
  full = conv.apply({"params": params}, x)
  onp.testing.assert_allclose(full[0], causal_conv(params, f64(x[0])), rtol=1e-5,
                              atol=1e-6)
  cache = conv.init(jax.random.key(1), x[:, :1], decode=True)["cache"]
  outs = []
  for start, stop in ((0, 1), (1, 2), (2, 6), (6, 7)):  # chunks shorter than J - 1
    out, upd = conv.apply({"params": params, "cache": cache}, x[:, start:stop],
                          decode=True, mutable=["cache"])
    cache = upd["cache"]
    outs.append(out)
  onp.testing.assert_allclose(jnp.concatenate(outs, 1), full, rtol=1e-6, atol=1e-6)


def nn_normal():
  return lambda k, s, d=jnp.float32: jax.random.normal(k, s, d)


# ---- Scans, decoding, causality, compile cost --------------------------------

def build(name, **extra):
  model = models.MODELS[name](**{**TINY[name], **extra}).build(IO)
  tokens = jax.random.randint(jax.random.key(0), (2, IO.length), 0, 5)
  params = perturbed(model.init(jax.random.key(1), tokens)["params"], scale=0.1)
  return model, params, tokens


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("length", [1, 16, 35])
def test_every_scan_agrees_with_the_sequential_one(name, length):
  """Values and gradients (parameters: A_log, the gates, ...) at lengths below,
  at and beyond one chunk of the "recompute" scan (RECOMPUTE_CHUNK = 16): no
  full chunk, whole chunks and no rest, two chunks and a rest of three. The
  scan itself is checked at more lengths in test_linear_recurrence."""
  io = dataclasses.replace(IO, length=length)
  tokens = jax.random.randint(jax.random.key(length), (2, length), 0, 5)
  outs, grads = {}, {}
  for scan in lr.SCANS:
    model = models.MODELS[name](**TINY[name], scan=scan).build(io)
    params = perturbed(model.init(jax.random.key(1), tokens)["params"], scale=0.1)
    def loss(p, m=model):
      out = m.apply({"params": p}, tokens)
      return jnp.sum(jnp.sin(out)), out
    # One compiled program per scan gives both the values and the gradients.
    grads[scan], outs[scan] = jax.jit(jax.grad(loss, has_aux=True))(params)
  for scan in ("parallel", "recompute"):
    onp.testing.assert_allclose(outs[scan], outs["sequential"], rtol=1e-5,
                                atol=1e-5, err_msg=scan)
    for g_other, g_seq in zip(jax.tree_util.tree_leaves(grads[scan]),
                              jax.tree_util.tree_leaves(grads["sequential"])):
      onp.testing.assert_allclose(g_other, g_seq, rtol=1e-4, atol=1e-5,
                                  err_msg=scan)


@pytest.mark.parametrize("scan", lr.SCANS)
@pytest.mark.parametrize("name", NAMES)
def test_full_call_equals_decoding(name, scan):
  """One token at a time, and in chunks of several tokens (the convolution's
  window then spans chunks)."""
  model, params, tokens = build(name, scan=scan)
  full = model.apply({"params": params}, tokens)
  step = jax.jit(lambda c, t: model.apply({"params": params, "cache": c}, t,
                                          decode=True, mutable=["cache"]))
  for bounds in ([(t, t + 1) for t in range(IO.length)], [(0, 3), (3, 4), (4, 9)]):
    cache = model.init(jax.random.key(1), tokens[:, :1], decode=True)["cache"]
    outs = []
    for start, stop in bounds:
      out, upd = step(cache, tokens[:, start:stop])
      cache = upd["cache"]
      outs.append(out)
    onp.testing.assert_allclose(jnp.concatenate(outs, 1), full, rtol=1e-5,
                                atol=1e-5)


@pytest.mark.parametrize("scan", lr.SCANS)
@pytest.mark.parametrize("name", NAMES)
def test_causal_gradient_after_t_is_exactly_zero(name, scan):
  model, params, tokens = build(name, scan=scan)
  g = input_gradient_mask(model, params, tokens, t=4)
  assert onp.all(g[5:] == 0.0) and onp.all(g[:5] > 0.0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scan, limit", [("sequential", 2), ("recompute", 2),
                                         ("parallel", 3)])
def test_compiled_program_size_vs_length(name, scan, limit):
  """The sequential scans compile to the same loop at any length; the
  associative scan unrolls log2(L) levels (7 -> 12 from 64 to 4096)."""
  sizes = helpers.compiled_grad_sizes(name, scan, IO, lengths=(64, 4096))
  assert sizes[1] < limit * sizes[0], sizes


# ---- Initialisation ----------------------------------------------------------

def test_mamba_initialisation():
  layer = mamba_layer("parallel", dt_rank=3)
  p = layer.init(jax.random.key(0), jnp.ones((1, 2, 4)))["params"]
  # Small widths draw few deltas: check the paper's ranges on a wide layer too.
  wide = selective.MambaLayer(inner=4096, state_size=2, dt_rank=1, conv_width=4,
                              dt_min=1e-3, dt_max=0.1, dt_init_floor=1e-4,
                              scan="parallel")
  pw = wide.init(jax.random.key(1), jnp.ones((1, 2, 2)))["params"]
  delta = onp.asarray(jax.nn.softplus(pw["dt_bias"]), onp.float64)
  assert delta.min() >= 1e-3 * (1 - 1e-4) and delta.max() <= 0.1 * (1 + 1e-4)
  # log-uniform: log10(delta) uniform on [-3, -1], mean -2, quartiles -2.5, -1.5
  logs = onp.log10(delta)
  assert abs(logs.mean() + 2) < 0.05
  onp.testing.assert_allclose(onp.quantile(logs, [0.25, 0.75]), [-2.5, -1.5],
                              atol=0.05)
  onp.testing.assert_allclose(-onp.exp(p["A_log"]), -onp.tile(
      onp.arange(1, 4), (6, 1)), rtol=1e-6)               # S4D-real: -(n + 1)
  onp.testing.assert_array_equal(p["D"], onp.ones(6))
  bound = 3 ** -0.5                                     # W_dt: U(+-R^-1/2)
  assert onp.all(onp.abs(p["dt_proj"]) <= bound)
  assert onp.abs(p["dt_proj"]).max() > 0.5 * bound


def test_rglru_initialisation():
  layer = selective.RGLRULayer(c=8.0, a_min=0.9, a_max=0.999, scan="parallel")
  p = layer.init(jax.random.key(0), jnp.ones((1, 2, 4096)))["params"]
  a_c = sigmoid(f64(p["Lambda"])) ** 8
  assert a_c.min() >= 0.9 - 1e-5 and a_c.max() <= 0.999 + 1e-5
  # Uniform: mean and quartiles of U[0.9, 0.999].
  assert abs(a_c.mean() - 0.9495) < 0.003
  onp.testing.assert_allclose(onp.quantile(a_c, [0.25, 0.75]), [0.92475, 0.97425],
                              atol=0.004)


def _uniform_bound_and_normal(w, std, uniform):
  """Checks `w`'s spread against `std`: a uniform's bound is sqrt(3) std and
  nothing lies beyond it; a (not truncated) normal reaches past 2 std."""
  w = onp.asarray(w, onp.float64)
  assert abs(w.std() / std - 1) < 0.03, (w.std(), std)
  if uniform:
    assert onp.abs(w).max() <= math.sqrt(3) * std * (1 + 1e-6)
  else:  # ~4.6% of a normal is beyond 2 std; Flax's truncated normal has none
    assert 0.03 < (onp.abs(w) > 2 * std).mean() < 0.065


def test_mamba_authors_initialisation_is_state_spaces_mambas():
  """model.init=authors: PyTorch's nn.Linear default U(+-1/sqrt(fan_in)) for
  in_proj and x_proj, out_proj divided by sqrt(layers); RMSNorm eps 1e-5."""
  layers, d, e = 4, 256, 512
  layer = selective.MambaLayer(inner=e, state_size=16, dt_rank=16, conv_width=4,
                               dt_min=1e-3, dt_max=0.1, dt_init_floor=1e-4,
                               scan="sequential", init_style="authors", num_layers=layers)
  p = layer.init(jax.random.key(0), jnp.ones((1, 2, d)))["params"]
  _uniform_bound_and_normal(p["in_proj"]["kernel"], 1 / math.sqrt(3 * d), True)
  _uniform_bound_and_normal(p["x_proj"]["kernel"], 1 / math.sqrt(3 * e), True)
  _uniform_bound_and_normal(p["out_proj"]["kernel"],
                            1 / math.sqrt(3 * e * layers), True)
  # The default keeps Flax's lecun_normal: a truncated normal of std 1/sqrt(d).
  flax_p = dataclasses.replace(layer, init_style="flax").init(
      jax.random.key(0), jnp.ones((1, 2, d)))["params"]
  w = onp.asarray(flax_p["out_proj"]["kernel"], onp.float64)
  assert abs(w.std() * math.sqrt(e) - 1) < 0.03 and onp.abs(w).max() <= 2.0 / math.sqrt(e) * 1.14
  assert selective.MambaConfig(init="authors").norm_eps() == 1e-5
  assert selective.MambaConfig().norm_eps() == 1e-6


@pytest.mark.parametrize("name, eps", [("mamba", 1e-5), ("rglru", 1e-6)])
def test_the_final_norm_uses_the_authors_epsilon(name, eps):
  """With every block's output projection zeroed the stack is its final
  RMSNorm: x / sqrt(mean(x^2) + eps), on inputs small enough for eps to show."""
  cls = dict(mamba=selective.MambaConfig, rglru=selective.RGLRUConfig)[name]
  cfg = cls(width=8, num_layers=1, init="authors", scan="sequential")
  stack = selective.SelectiveStack(cfg)
  x = 1e-3 * jax.random.normal(jax.random.key(1), (2, 5, 8))
  params = stack.init(jax.random.key(0), x)["params"]
  params = jax.tree_util.tree_map_with_path(
      lambda path, v: jnp.zeros_like(v) if any(
          getattr(k, "key", None) in ("out_proj", "linear_out", "down") for k in path)
      else v, params)
  y = stack.apply({"params": params}, x)
  xs = f64(x)
  want = xs / onp.sqrt((xs ** 2).mean(-1, keepdims=True) + eps)
  onp.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_hawk_authors_initialisation_is_recurrentgemmas():
  """model.init=authors: recurrentgemma's variance_scaling(1, fan_in, normal),
  and 2 / layers for the recurrent block's linear_out and the MLP's down."""
  layers = 8
  cfg = selective.RGLRUConfig(width=384, num_layers=layers, init="authors",
                              scan="sequential")
  block = selective.HawkBlock(cfg)
  p = block.init(jax.random.key(0), jnp.ones((1, 2, 384)))["params"]
  e, hidden = cfg.inner_width(), cfg.mlp_ratio * 384
  t, mlp = p["temporal"], p["mlp"]
  _uniform_bound_and_normal(t["linear_x"]["kernel"], 1 / math.sqrt(384), False)
  _uniform_bound_and_normal(t["rg_lru"]["input_gate"]["kernel"], 1 / math.sqrt(e), False)
  _uniform_bound_and_normal(t["linear_out"]["kernel"],
                            math.sqrt(2 / layers / e), False)
  _uniform_bound_and_normal(mlp["up"]["kernel"], 1 / math.sqrt(384), False)
  _uniform_bound_and_normal(mlp["down"]["kernel"],
                            math.sqrt(2 / layers / hidden), False)
  onp.testing.assert_array_equal(t["linear_out"]["bias"], 0)


def test_sqrt_with_bounded_derivative():
  x = jnp.array([1e-12, 1e-4, 0.25])
  onp.testing.assert_allclose(selective.sqrt_bounded_derivative(x), jnp.sqrt(x))
  g = jax.grad(lambda v: jnp.sum(selective.sqrt_bounded_derivative(v)))(x)
  onp.testing.assert_allclose(g, [1000.0, 50.0, 1.0], rtol=1e-5)
  onp.testing.assert_allclose(jax.jvp(selective.sqrt_bounded_derivative, (x,),
                                      (jnp.ones(3),))[1], g, rtol=1e-6)


@pytest.mark.parametrize("name, fields, match", [
    ("mamba", dict(state_size=0), "state_size"),
    ("mamba", dict(dt_min=0.2), "dt_min"),
    ("mamba", dict(dt_rank=-1), "dt_rank"),
    ("mamba", dict(expand=0), "expand"),
    ("mamba", dict(scan="fast"), "scan"),
    ("rglru", dict(a_min=0.99, a_max=0.9), "a_min"),
    ("rglru", dict(a_max=1.0), "a_max"),
    ("rglru", dict(c=0.0), "c must be positive"),
    ("rglru", dict(conv_width=0), "conv_width"),
    ("rglru", dict(dropout=1.0), "dropout"),
])
def test_bad_config_values_are_config_errors(name, fields, match):
  with pytest.raises(ConfigError, match=match):
    models.MODELS[name](**fields)


# ---- Remat, precision, diagnostics -------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_remat_gives_the_same_gradients(name):
  model, params, tokens = build(name)
  remat, _, _ = build(name, remat=True)
  loss = lambda m: jax.grad(lambda p: jnp.sum(m.apply({"params": p}, tokens) ** 2))(
      params)
  for a, b in zip(jax.tree_util.tree_leaves(loss(remat)),
                  jax.tree_util.tree_leaves(loss(model))):
    onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_policy_keeps_decays_and_state_float32(name):
  model, params, tokens = build(name)
  cast = precision.cast_params(params, jnp.bfloat16)
  kept = {"/".join(str(getattr(k, "key", k)) for k in path): x.dtype
          for path, x in jax.tree_util.tree_flatten_with_path(cast)[0]}
  decays = [k for k in kept if k.endswith(("A_log", "dt_bias", "Lambda"))]
  assert len(decays) == (4 if name == "mamba" else 2), decays
  for key, dtype in kept.items():
    want = key in decays or "norm" in key
    assert (dtype == jnp.float32) == want, (key, dtype)
  out, state = model.apply({"params": cast}, tokens, decode=True, mutable=["cache"])
  layer = "mamba" if name == "mamba" else "temporal"
  block = state["cache"]["backbone"]["block_0"][layer]
  rec = block["state"] if name == "mamba" else block["rg_lru"]["state"]
  assert rec.dtype == jnp.float32                      # the recurrent state
  assert block["conv"]["conv_state"].dtype == jnp.bfloat16  # the block's activations
  full = model.apply({"params": params}, tokens)
  onp.testing.assert_allclose(out.astype(jnp.float32), full, atol=0.1)


@pytest.mark.parametrize("name", NAMES)
def test_decay_rates_are_the_spectral_radius_analogue(name):
  model, _, tokens = build(name)
  params = model.init(jax.random.key(1), tokens)["params"]
  rates = diagnostics.decay_rates(params)
  radii = diagnostics.spectral_radii(params)
  assert len(rates) == 2 and set(rates) <= set(radii)
  for key, r in rates.items():
    assert onp.all((r > 0) & (r < 1)) and radii[key] == pytest.approx(r.max())
    if name == "rglru":  # a^c at init: [0.9, 0.999]
      assert onp.all((r >= 0.9 - 1e-5) & (r <= 0.999 + 1e-5))
    else:  # slowest mode exp(-delta): delta in [1e-3, 0.1]
      assert onp.all((r >= math.exp(-0.1) - 1e-6) & (r <= math.exp(-1e-3) + 1e-6))
  # The state Jacobian (forward mode, through the whole cache) works too.
  jac = diagnostics.state_jacobian_norms(model, params, tokens, [1, 4])
  assert jac["distance"] == [1, 4] and all(onp.isfinite(jac["jacobian_norm"]))
