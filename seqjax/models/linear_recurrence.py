"""Linear recurrences computed by a sequential or a parallel scan: LRU and minGRU.

Both are h_t = a_t * h_{t-1} + b_t with a_t, b_t independent of h, so the
recurrence can be computed by `lax.scan` (L sequential steps) or by
`lax.associative_scan` (log-depth; Blelloch 1990, Martin & Cundy 2018) with the
combine (a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2). `config.model.scan` chooses;
tests check that the two agree.

LRU (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long
Sequences"): a diagonal complex recurrence
  h_t = lambda * h_{t-1} + gamma * (B x_t),   y_t = Re(C h_t) + D * x_t,
  lambda = exp(-exp(nu_log) + i exp(theta_log)),  gamma = exp(gamma_log),
with the ring initialisation (|lambda| uniform on the ring r_min <= |lambda| <=
r_max, phase uniform in [0, max_phase]) and gamma_log = log sqrt(1 - |lambda|^2)
(the normalisation). B is complex normal with variance 1/(2 D) per part, C
complex normal with variance 1/N, D normal. The LRU sits in the paper's residual
block: x + Dropout(GLU(GELU(LRU(LayerNorm(x))))), GLU(y) = W1 y * sigmoid(W2 y).

minGRU (Feng et al. 2024, "Were RNNs All We Needed?"):
  z_t = sigmoid(W_z x_t + b_z),  h~_t = W_h x_t + b_h,  h_t = (1 - z_t) h_{t-1} + z_t h~_t,
in a residual block x + W_o minGRU(LayerNorm(x)) (hidden size = width).

The state is complex64 (LRU) or float32 (minGRU) also under bfloat16 compute.
Letters of this file, beyond the legend in seqjax.interfaces: N the state size
(LRU: `state_size`, minGRU: the width D).
"""

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models.common import SequenceModel

SCANS = ("sequential", "parallel", "recompute")
RECOMPUTE_CHUNK = 16  # steps between the states the "recompute" scan keeps


def linear_scan(a_LxBxN, b_LxBxN, h0_BxN, method: str):
  """h_t = a_t * h_{t-1} + b_t over the leading (time) axis, from h_{-1} = h0.

  The trailing axes are any shape shared by a, b and h0 ([B, N] here).
  Returns all states [L, B, N]; the last one is the carry.
  """
  return fused_linear_scan(lambda ab: ab, (a_LxBxN, b_LxBxN), h0_BxN, method,
                           lambda h, _: h)[1]


def fused_linear_scan(coefficients, xs, h0, method: str, readout):
  """The one scan of every linear recurrence in seqjax (LRU, minGRU, Mamba,
  RG-LRU): h_t = a_t * h_{t-1} + b_t, (a_t, b_t) = coefficients(xs_t), from
  h_{-1} = h0, returning (h_{L-1}, readout(h_t, xs_t) stacked over t).

  `xs` is a pytree of arrays with a leading time axis L. `coefficients` and
  `readout` must broadcast over leading axes, as they are called per step by
  the sequential scans (`lax.scan`: a_t, b_t and h_t exist one step at a time,
  never as [L, ...] arrays) and on whole sequences by the parallel one
  (`lax.associative_scan`, Blelloch 1990, with the combine (a1, b1), (a2, b2)
  -> (a1 a2, a2 b1 + b2)). Mamba's a and b are [L, B, E, N] against its [L, B, E]
  inputs and outputs, so the sequential forms save their memory traffic.

  Methods: "sequential" is `lax.scan` differentiated by JAX, whose backward
  pass reads per-step residuals (a_t, h_{t-1}, ...) that the forward pass
  stacks over all L steps; "recompute" computes the same forward scan but keeps
  only every RECOMPUTE_CHUNK-th state, and its backward pass recomputes the
  states of one chunk at a time and runs the reverse recurrence step by step
  (the recomputation of Gu & Dao 2023, section 3.3); "parallel" is the
  associative scan.
  """
  if method == "parallel":
    a, b = coefficients(xs)
    b = b.at[0].add(a[0] * h0)
    combine = lambda x, y: (x[0] * y[0], y[0] * x[1] + y[1])
    h = jax.lax.associative_scan(combine, (a, b))[1]
    return h[-1], readout(h, xs)

  def step(h, xs_t):
    a, b = coefficients(xs_t)
    h = a * h + b
    return h, readout(h, xs_t)

  if method == "sequential":
    return jax.lax.scan(step, h0, xs)
  # Values the step closes over (Mamba's A) become explicit arguments, so that
  # the custom backward pass can return their gradients.
  step, consts = jax.closure_convert(step, h0, jax.tree.map(lambda v: v[0], xs))
  return _recompute_scan(step, RECOMPUTE_CHUNK, h0, xs, *consts)


def _split_chunks(xs, chunk):
  """xs [L, ...] -> (chunks [L // chunk, chunk, ...], the rest [L % chunk, ...])."""
  length = jax.tree.leaves(xs)[0].shape[0]
  full = length - length % chunk
  return (jax.tree.map(lambda v: v[:full].reshape((-1, chunk) + v.shape[1:]), xs),
          jax.tree.map(lambda v: v[full:], xs))


def _scan_states(step, h0, xs, consts):
  """The forward recurrence: (last state, states before each step)."""
  return jax.lax.scan(lambda h, x: (step(h, x, *consts)[0], h), h0, xs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _recompute_scan(step, chunk, h0, xs, *consts):
  del chunk
  return jax.lax.scan(lambda h, x: step(h, x, *consts), h0, xs)


def _recompute_scan_fwd(step, chunk, h0, xs, *consts):
  run = lambda h, xs_c: jax.lax.scan(lambda h, x: step(h, x, *consts), h, xs_c)

  def chunk_forward(h, xs_c):  # keeps the state before the chunk
    h_end, ys_c = run(h, xs_c)
    return h_end, (h, ys_c)

  full, rest = _split_chunks(xs, chunk)
  h_mid, (starts, y_full) = jax.lax.scan(chunk_forward, h0, full)
  h_last, y_rest = run(h_mid, rest)
  ys = jax.tree.map(lambda f, r: jnp.concatenate(
      [f.reshape((-1,) + f.shape[2:]), r]), y_full, y_rest)
  return (h_last, ys), (h_mid, starts, xs, consts)


def _recompute_scan_bwd(step, chunk, residuals, cotangents):
  h_mid, starts, xs, consts = residuals
  g_last, dys = cotangents
  zeros = jax.tree.map(jnp.zeros_like, consts)

  def chunk_backward(carry, inputs):
    """Recompute one chunk's states from its first, then step back through it."""
    g, dconsts = carry
    h_start, xs_c, dys_c = inputs
    _, h_prev = _scan_states(step, h_start, xs_c, consts)

    def step_back(carry, inputs):
      g, dconsts = carry
      h, x, dy = inputs
      _, vjp = jax.vjp(step, h, x, *consts)
      dh, dx, *dc = vjp((g, dy))
      return (dh, jax.tree.map(jnp.add, dconsts, tuple(dc))), dx

    return jax.lax.scan(step_back, (g, dconsts), (h_prev, xs_c, dys_c),
                        reverse=True)

  full, rest = _split_chunks(xs, chunk)
  dys_full, dys_rest = _split_chunks(dys, chunk)
  carry, dxs_rest = chunk_backward((g_last, zeros), (h_mid, rest, dys_rest))
  (dh0, dconsts), dxs_full = jax.lax.scan(chunk_backward, carry,
                                          (starts, full, dys_full), reverse=True)
  dxs = jax.tree.map(lambda f, r: jnp.concatenate(
      [f.reshape((-1,) + f.shape[2:]), r]), dxs_full, dxs_rest)
  return (dh0, dxs, *dconsts)


_recompute_scan.defvjp(_recompute_scan_fwd, _recompute_scan_bwd)


def decoding_scan(method: str, decode: bool) -> str:
  """The scan a layer runs: under decoding, "recompute" runs as "sequential".
  The two have the same forward pass, decoding needs no backward pass, and the
  custom VJP of "recompute" admits no forward-mode derivative, which
  seqjax.diagnostics takes through decoding (`jax.jacfwd`)."""
  return "sequential" if decode and method == "recompute" else method


def carried(module, decode: bool, init, name: str = "state"):
  """(cache variable, value): the state carried in the "cache" collection under
  decoding (variable `name` of `module`), else (None, `init`)."""
  if not decode:
    return None, init
  cache = module.variable("cache", name, lambda: init)
  return cache, cache.value


def ring_init(r_min: float, r_max: float, max_phase: float):
  def nu_log(key, shape):
    u = jax.random.uniform(key, shape)
    return jnp.log(-0.5 * jnp.log(u * (r_max**2 - r_min**2) + r_min**2))
  def theta_log(key, shape):
    return jnp.log(max_phase * jax.random.uniform(key, shape))
  return nu_log, theta_log


class LRULayer(nn.Module):
  """The LRU recurrence: x [B, L, D] -> y [B, L, D] (state [B, N] complex)."""
  state_size: int
  r_min: float
  r_max: float
  max_phase: float
  scan: str

  @nn.compact
  def __call__(self, x_BxLxD, decode: bool = False):
    x_BxLxD = x_BxLxD.astype(jnp.float32)
    width, n = x_BxLxD.shape[-1], self.state_size
    nu_init, theta_init = ring_init(self.r_min, self.r_max, self.max_phase)
    nu_log = self.param("nu_log", nu_init, (n,))
    theta_log = self.param("theta_log", theta_init, (n,))
    gamma_log = self.param("gamma_log", lambda _, s: jnp.log(jnp.sqrt(
        1 - jnp.exp(-2 * jnp.exp(nu_log)))), (n,))
    normal = lambda std: nn.initializers.normal(stddev=std)
    b_re = self.param("B_re", normal(1 / math.sqrt(2 * width)), (width, n))
    b_im = self.param("B_im", normal(1 / math.sqrt(2 * width)), (width, n))
    c_re = self.param("C_re", normal(1 / math.sqrt(n)), (n, width))
    c_im = self.param("C_im", normal(1 / math.sqrt(n)), (n, width))
    d = self.param("D", normal(1.0), (width,))
    lam_N = jnp.exp(-jnp.exp(nu_log) + 1j * jnp.exp(theta_log))
    # B x and Re(C h) as real matmuls on the real and imaginary parts: the same
    # products, but XLA:CPU runs a complex64 matmul about 10x slower than a
    # float32 one of the same shape (docs/benchmarks.md, issue 15).
    bx_LxBx2N = jnp.einsum("bld,dn->lbn", x_BxLxD, jnp.concatenate([b_re, b_im], -1))
    bx_LxBxN = jax.lax.complex(bx_LxBx2N[..., :n], bx_LxBx2N[..., n:])
    bx_LxBxN = bx_LxBxN * jnp.exp(gamma_log)[None, None]
    cache, h0 = carried(self, decode, jnp.zeros((x_BxLxD.shape[0], n),
                                                jnp.complex64))
    a_LxBxN = jnp.broadcast_to(lam_N.astype(jnp.complex64), bx_LxBxN.shape)
    h_LxBxN = linear_scan(a_LxBxN, bx_LxBxN, h0, decoding_scan(self.scan, decode))
    if cache is not None and not self.is_initializing():
      cache.value = h_LxBxN[-1]
    y_LxBxD = jnp.einsum("lbn,nd->lbd", jnp.concatenate(
        [jnp.real(h_LxBxN), -jnp.imag(h_LxBxN)], -1), jnp.concatenate([c_re, c_im]))
    return jnp.swapaxes(y_LxBxD, 0, 1) + d[None, None] * x_BxLxD


class MinGRULayer(nn.Module):
  """The minGRU recurrence: x [B, L, D] -> h [B, L, D]."""
  scan: str

  @nn.compact
  def __call__(self, x_BxLxD, decode: bool = False):
    width = x_BxLxD.shape[-1]
    z_BxLxD = jax.nn.sigmoid(nn.Dense(width, name="gate")(x_BxLxD))
    candidate_BxLxD = nn.Dense(width, name="candidate")(x_BxLxD)
    dtype = jnp.promote_types(z_BxLxD.dtype, jnp.float32)
    a_LxBxD = jnp.swapaxes(1 - z_BxLxD, 0, 1).astype(dtype)
    b_LxBxD = jnp.swapaxes(z_BxLxD * candidate_BxLxD, 0, 1).astype(dtype)
    cache, h0 = carried(self, decode, jnp.zeros((x_BxLxD.shape[0], width), dtype))
    h_LxBxD = linear_scan(a_LxBxD, b_LxBxD, h0, decoding_scan(self.scan, decode))
    if cache is not None and not self.is_initializing():
      cache.value = h_LxBxD[-1]
    return jnp.swapaxes(h_LxBxD, 0, 1)


@dataclasses.dataclass(frozen=True)
class LinearRecurrenceConfig:
  """`config.model` fields shared by `lru` and `mingru`."""
  width: int = 128            # model width D
  num_layers: int = 1         # residual blocks
  dropout: float = 0.0        # dropout on each block's output, in training
  scan: str = "parallel"      # sequential | recompute (lax.scan) | parallel

  def __post_init__(self):
    configs.check_positive("model", width=self.width, num_layers=self.num_layers)
    configs.check_choice("model", "scan", self.scan, SCANS)
    configs.check_probability("model", dropout=self.dropout)

  def branch(self):
    """The residual branch of block i, `f(cfg, h, i, decode, dtype) -> h`, called
    inside `LinearRecurrentStack` (its layers are named there, `lru_{i}`, ...)."""
    raise NotImplementedError

  def build(self, io: IOSpec) -> nn.Module:
    return SequenceModel(io=io, width=self.width, backbone=LinearRecurrentStack(self))


@dataclasses.dataclass(frozen=True)
class LRUConfig(LinearRecurrenceConfig):
  """`config.model` fields of `lru`."""
  state_size: int = 0         # N, complex state per layer; 0 means N = width
  r_min: float = 0.9          # ring initialisation: smallest |lambda|
  r_max: float = 0.999        # largest |lambda|
  max_phase: float = 6.283185307179586  # phases uniform in [0, max_phase]

  def __post_init__(self):
    super().__post_init__()
    if not 0 <= self.r_min < self.r_max < 1:
      raise ConfigError(f"model.r_min={self.r_min} and model.r_max={self.r_max} "
                        "must satisfy 0 <= r_min < r_max < 1.")
    configs.check_positive("model", max_phase=self.max_phase)
    if self.state_size < 0:
      raise ConfigError(f"model.state_size must be >= 0, got {self.state_size}.")

  def branch(self):
    return lru_branch


@dataclasses.dataclass(frozen=True)
class MinGRUConfig(LinearRecurrenceConfig):
  """`config.model` fields of `mingru`."""

  def branch(self):
    return mingru_branch


def lru_branch(cfg: LRUConfig, h, i: int, decode: bool, dtype):
  """GLU(GELU(LRU(h))), GLU(y) = W1 y * sigmoid(W2 y), computed in `dtype`."""
  h = LRULayer(cfg.state_size or cfg.width, cfg.r_min, cfg.r_max,
               cfg.max_phase, cfg.scan, name=f"lru_{i}")(h, decode)
  h = nn.gelu(h).astype(dtype)
  return nn.Dense(cfg.width, name=f"glu_a_{i}")(h) * jax.nn.sigmoid(
      nn.Dense(cfg.width, name=f"glu_b_{i}")(h))


def mingru_branch(cfg: MinGRUConfig, h, i: int, decode: bool, dtype):
  """W_o minGRU(h), computed in `dtype`."""
  h = MinGRULayer(cfg.scan, name=f"mingru_{i}")(h, decode)
  return nn.Dense(cfg.width, name=f"out_{i}")(h.astype(dtype))


class LinearRecurrentStack(nn.Module):
  """Residual blocks of LRU or minGRU: x [B, L, D] -> [B, L, D]."""
  config: LinearRecurrenceConfig

  @nn.compact
  def __call__(self, x_BxLxD, *, train: bool = False, decode: bool = False):
    cfg = self.config
    for i in range(cfg.num_layers):
      h = nn.LayerNorm(name=f"norm_{i}")(x_BxLxD)
      h = cfg.branch()(cfg, h, i, decode, x_BxLxD.dtype)
      x_BxLxD = x_BxLxD + nn.Dropout(cfg.dropout, deterministic=not train)(h)
    return x_BxLxD
