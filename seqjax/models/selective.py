"""Selective (input-dependent) linear recurrences: Mamba's S6 block and Hawk's RG-LRU.

Both are h_t = a_t * h_{t-1} + b_t with a_t and b_t computed from the input
only, so they run on the project's one linear scan (`linear_recurrence.
linear_scan`, sequential `lax.scan` or parallel `lax.associative_scan`, chosen by
`config.model.scan`; tests check that the two agree). Unlike the LRU's, the
decay a_t changes with every input: the model chooses what to keep.

Letters of this file, beyond the legend in seqjax.interfaces: E the inner
width of a block (Mamba: expand * D; RG-LRU: rnn_width), N the state size per
channel (Mamba), I the rank of Mamba's delta projection, J the taps of the
causal convolution (`conv_width`).

Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective
State Spaces", section 3 and Algorithm 2; reference code state-spaces/mamba
`mamba_simple.py`). Per channel e a diagonal state of size N:
  x, z = split(W_in u)                               (two branches, E each)
  x = SiLU(causal_conv(x))                           (depthwise, J = 4 taps)
  delta = softplus(W_dt (W_r x) + b_dt)  [E];  B = W_B x, C = W_C x  [N]
  h_t = exp(delta_t A) * h_{t-1} + (delta_t B_t) x_t  (zero-order hold for A,
                                                       the simplified delta B)
  y_t = C_t . h_t + D * x_t;   out = W_out (y * SiLU(z))
with A = -exp(A_log), A_log = log(n + 1) (S4D-real: A_n = -(n + 1)); D = 1; b_dt
the inverse softplus of dt drawn log-uniformly in [dt_min, dt_max] (floored at
dt_init_floor), so delta starts in that range; W_dt uniform in +-I^-1/2; the
convolution as PyTorch's Conv1d (uniform in +-J^-1/2, weights and bias).
The block is pre-norm residual, x + Mamba(RMSNorm(x)); a final RMSNorm.

RG-LRU and Hawk (De et al. 2024, "Griffin: Mixing Gated Linear Recurrences with
Local Attention", section 2.4; reference code google-deepmind/recurrentgemma
`layers.py` / `modules.py`):
  r_t = sigmoid(W_a x_t + b_a),  i_t = sigmoid(W_x x_t + b_x)
  log a_t = c r_t log sigmoid(Lambda) = -c r_t softplus(-Lambda)   (c = 8)
  h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)
computed in log space; Lambda is drawn so that a^c = sigmoid(Lambda)^c is
uniform in [a_min, a_max] = [0.9, 0.999] (the paper; recurrentgemma draws a
itself on a ring instead). The derivative of the square root is bounded at
1000 as in recurrentgemma (the forward value is unchanged), else it grows
without limit as a_t -> 1. The gates here are dense (the paper's equations);
recurrentgemma makes them block-diagonal over heads. recurrentgemma also resets
the state (and the sqrt factor) at document starts; seqjax has no packed
documents, so the recurrence starts from h = 0 as the paper writes it.
Recurrent block: out = W_o (GeLU(W_y x) * RG-LRU(conv(W_x x))); gated MLP block:
W_d (GeLU(W_g x) * (W_u x)) with expansion mlp_ratio; Hawk's residual block is
x += recurrent(RMSNorm(x)); x += mlp(RMSNorm(x)); a final RMSNorm. (Griffin's
local-attention blocks are not implemented.)

Initialisation of the projections (`model.init`): "flax" (the default, and
every result before 2026-12-06) uses Flax's lecun_normal and RMSNorm eps 1e-6;
"authors" as the reference code: for Mamba PyTorch's nn.Linear default
U(+-1/sqrt(fan_in)) for in_proj and x_proj, out_proj divided by sqrt(layers),
RMSNorm eps 1e-5 (state-spaces/mamba's `_init_weights`, `norm_epsilon`); for
Hawk variance_scaling(1, fan_in, normal) and 2 / layers for the output layers
(recurrentgemma's `final_w_init_variance_scale`). The special parameters
(delta, A, D, Lambda, the convolutions) are the authors' in both. Not the
authors': the embedding (seqjax's `SequenceModel`, shared by every model;
Mamba's code draws it from N(0, 0.02^2)) and Hawk's dense gates (block-diagonal
in recurrentgemma).

Precision: A_log, dt_bias and Lambda stay float32 (seqjax.precision), so the
decays, delta and the state (float32, also under bfloat16 compute) are computed
in float32; the block's output returns to the compute dtype.

Decoding (`decode=True`) carries, per layer, the last J - 1 inputs of the
convolution ("conv_state" [B, J-1, E]) and the recurrent state ("state":
[B, E, N] for Mamba, [B, E] for the RG-LRU) in the "cache" collection.
"""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models.common import SequenceModel
from seqjax.models.linear_recurrence import SCANS
from seqjax.models.linear_recurrence import carried
from seqjax.models.linear_recurrence import decoding_scan
from seqjax.models.linear_recurrence import fused_linear_scan
from seqjax.models.linear_recurrence import linear_scan


INITS = ("flax", "authors")  # `config.model.init` of mamba and rglru


def kernel_init(init: str, model: str, scale: float = 1.0):
  """A projection's kernel initialiser. "flax": Flax's default, lecun_normal
  (`scale` unused; seqjax before 2026-12). "authors": as the authors' code,
  with `scale` multiplying the variance: for Mamba PyTorch's nn.Linear default,
  U(+-1/sqrt(fan_in)) = variance_scaling(1/3, fan_in, uniform)
  (state-spaces/mamba); for the RG-LRU recurrentgemma's Dense,
  variance_scaling(1, fan_in, normal)."""
  if init == "flax":
    return nn.initializers.lecun_normal()
  if model == "mamba":
    return nn.initializers.variance_scaling(scale / 3, "fan_in", "uniform")
  return nn.initializers.variance_scaling(scale, "fan_in", "normal")


def dense(init: str, model: str, width: int, name: str, scale: float = 1.0,
          use_bias: bool = True) -> nn.Dense:
  """A projection to `width` whose kernel is drawn by `kernel_init`."""
  return nn.Dense(width, use_bias=use_bias,
                  kernel_init=kernel_init(init, model, scale), name=name)


def uniform_init(bound: float):
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)


class CausalConv(nn.Module):
  """Depthwise causal convolution over time: x [B, L, E] -> y [B, L, E],
  y_t = b + sum_j w_j * x_{t - (J - 1) + j}, with zeros before the start.

  Under decoding the J - 1 inputs before the chunk come from the "cache"
  collection ("conv_state" [B, J-1, E]) and the last J - 1 are written back.
  """
  taps: int                  # J
  kernel_init: nn.initializers.Initializer
  bias_init: nn.initializers.Initializer

  @nn.compact
  def __call__(self, x_BxLxE, decode: bool = False):
    j, e, length = self.taps, x_BxLxE.shape[-1], x_BxLxE.shape[1]
    w_JxE = self.param("kernel", self.kernel_init, (j, e))
    b_E = self.param("bias", self.bias_init, (e,))
    cache, past = carried(self, decode, jnp.zeros(
        (x_BxLxE.shape[0], j - 1, e), x_BxLxE.dtype), "conv_state")
    padded = jnp.concatenate([past.astype(x_BxLxE.dtype), x_BxLxE], axis=1)
    y_BxLxE = b_E[None, None] + sum(
        w_JxE[k][None, None] * padded[:, k:k + length] for k in range(j))
    if cache is not None and not self.is_initializing():
      cache.value = padded[:, length:]
    return y_BxLxE


def dt_bias_init(dt_min: float, dt_max: float, floor: float):
  """b_dt = softplus^-1(dt), dt log-uniform in [dt_min, dt_max], at least floor."""
  def init(key, shape, dtype=jnp.float32):
    u = jax.random.uniform(key, shape, dtype)
    dt = jnp.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = jnp.maximum(dt, floor)
    return dt + jnp.log(-jnp.expm1(-dt))
  return init


def s4d_real_init(key, shape, dtype=jnp.float32):
  """A_log [E, N] = log(n + 1), so A = -exp(A_log) = -(n + 1) (S4D-real)."""
  del key
  return jnp.broadcast_to(jnp.log(jnp.arange(1, shape[-1] + 1, dtype=dtype)), shape)


class MambaLayer(nn.Module):
  """The Mamba mixer (S6 inside its gated block): u [B, L, D] -> [B, L, D].

  See the module docstring for the equations and initialisation.
  """
  inner: int          # E
  state_size: int     # N
  dt_rank: int        # I
  conv_width: int     # J
  dt_min: float
  dt_max: float
  dt_init_floor: float
  scan: str
  init_style: str = "flax"  # INITS: "authors" also rescales out_proj by layers
  num_layers: int = 1   # of the stack (the "authors" out_proj rescaling)

  @nn.compact
  def __call__(self, u_BxLxD, decode: bool = False):
    e, n, r = self.inner, self.state_size, self.dt_rank
    proj = lambda width, name, scale=1.0: dense(
        self.init_style, "mamba", width, name, scale, use_bias=False)
    xz_BxLx2E = proj(2 * e, "in_proj")(u_BxLxD)
    x_BxLxE, z_BxLxE = jnp.split(xz_BxLx2E, 2, axis=-1)
    bound = 1 / math.sqrt(self.conv_width)
    x_BxLxE = jax.nn.silu(CausalConv(self.conv_width, uniform_init(bound),
                                     uniform_init(bound), name="conv")(x_BxLxE, decode))
    dbc = proj(r + 2 * n, "x_proj")(x_BxLxE)
    dt_BxLxI, b_BxLxN, c_BxLxN = jnp.split(dbc, [r, r + n], axis=-1)
    w_dt = self.param("dt_proj", uniform_init(r ** -0.5), (r, e))
    b_dt = self.param("dt_bias", dt_bias_init(self.dt_min, self.dt_max,
                                              self.dt_init_floor), (e,))
    a_log = self.param("A_log", s4d_real_init, (e, n))
    d = self.param("D", nn.initializers.ones, (e,))
    delta_BxLxE = jax.nn.softplus(
        jnp.einsum("blr,re->ble", dt_BxLxI, w_dt) + b_dt[None, None])
    dtype = jnp.promote_types(delta_BxLxE.dtype, jnp.float32)
    time_major = lambda v: jnp.swapaxes(v, 0, 1).astype(dtype)
    delta_LxBxE = time_major(delta_BxLxE)
    xs = (delta_LxBxE, delta_LxBxE * time_major(x_BxLxE), time_major(b_BxLxN),
          time_major(c_BxLxN))
    a_ExN = -jnp.exp(a_log.astype(dtype))                 # S4D-real: A_n = -(n + 1)

    def coefficients(xs_t):  # [..., E], [..., E], [..., N] -> a, b [..., E, N]
      delta, dx, b, _ = xs_t
      a_xExN = a_ExN.reshape((1,) * (delta.ndim - 1) + a_ExN.shape)
      return jnp.exp(delta[..., None] * a_xExN), dx[..., None] * b[..., None, :]

    def readout(h_xExN, xs_t):  # y = C . h
      return jnp.einsum("...en,...n->...e", h_xExN, xs_t[3])

    cache, h0 = carried(self, decode, jnp.zeros((u_BxLxD.shape[0], e, n), dtype))
    h_BxExN, y_LxBxE = fused_linear_scan(coefficients, xs, h0,
                                         decoding_scan(self.scan, decode), readout)
    if cache is not None and not self.is_initializing():
      cache.value = h_BxExN
    y_BxLxE = jnp.swapaxes(y_LxBxE, 0, 1) + d[None, None] * x_BxLxE
    y_BxLxE = (y_BxLxE * jax.nn.silu(z_BxLxE)).astype(u_BxLxD.dtype)
    # state-spaces/mamba divides out_proj by sqrt(layers) (GPT-2's rescaling of
    # the residual output projections): its variance by the layers.
    return proj(u_BxLxD.shape[-1], "out_proj", 1 / self.num_layers)(y_BxLxE)


@jax.custom_jvp
def sqrt_bounded_derivative(x):
  """sqrt(x), whose derivative is that at max(x, 1 / (4 * 1000^2)): at most 1000.

  A custom JVP (not VJP), so forward-mode users (`jax.jacfwd` in
  seqjax.diagnostics) can differentiate it too; reverse mode transposes it."""
  return jnp.sqrt(x)


@sqrt_bounded_derivative.defjvp
def _sqrt_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  return jnp.sqrt(x), t * 0.5 * jax.lax.rsqrt(jnp.maximum(x, 1 / (4 * 1000.0 ** 2)))


def lambda_init(a_min: float, a_max: float, c: float):
  """Lambda with sigmoid(Lambda)^c uniform in [a_min, a_max]: log a = log(u) / c."""
  def init(key, shape, dtype=jnp.float32):
    log_a = jnp.log(jax.random.uniform(key, shape, dtype, a_min, a_max)) / c
    return log_a - jnp.log(-jnp.expm1(log_a))  # logit(a), stable near a = 1
  return init


class RGLRULayer(nn.Module):
  """The RG-LRU recurrence: x [B, L, E] -> h [B, L, E] (state [B, E] float32)."""
  c: float
  a_min: float
  a_max: float
  scan: str
  init_style: str = "flax"   # INITS (a Module's `init` is its method)

  @nn.compact
  def __call__(self, x_BxLxE, decode: bool = False):
    e = x_BxLxE.shape[-1]
    gate = lambda name: jax.nn.sigmoid(
        dense(self.init_style, "rglru", e, name)(x_BxLxE))
    r_BxLxE, i_BxLxE = gate("recurrence_gate"), gate("input_gate")
    lam = self.param("Lambda", lambda_init(self.a_min, self.a_max, self.c), (e,))
    dtype = jnp.promote_types(lam.dtype, jnp.float32)
    log_a_BxLxE = -self.c * r_BxLxE.astype(dtype) * jax.nn.softplus(
        -lam.astype(dtype))[None, None]
    a_BxLxE = jnp.exp(log_a_BxLxE)
    norm_BxLxE = sqrt_bounded_derivative(-jnp.expm1(2 * log_a_BxLxE))
    b_BxLxE = norm_BxLxE * (i_BxLxE * x_BxLxE).astype(dtype)
    cache, h0 = carried(self, decode, jnp.zeros((x_BxLxE.shape[0], e), dtype))
    h_LxBxE = linear_scan(jnp.swapaxes(a_BxLxE, 0, 1), jnp.swapaxes(b_BxLxE, 0, 1),
                          h0, decoding_scan(self.scan, decode))
    if cache is not None and not self.is_initializing():
      cache.value = h_LxBxE[-1]
    return jnp.swapaxes(h_LxBxE, 0, 1)


class HawkRecurrentBlock(nn.Module):
  """Griffin's recurrent block: x [B, L, D] -> [B, L, D]; two branches of width E,
  GeLU(W_y x) and RG-LRU(conv(W_x x)), multiplied and projected back."""
  config: "RGLRUConfig"

  @nn.compact
  def __call__(self, x_BxLxD, decode: bool = False):
    cfg = self.config
    e = cfg.inner_width()
    y_BxLxE = nn.gelu(dense(cfg.init, "rglru", e, "linear_y")(x_BxLxD))
    h_BxLxE = dense(cfg.init, "rglru", e, "linear_x")(x_BxLxD)
    h_BxLxE = CausalConv(
        cfg.conv_width,
        nn.initializers.variance_scaling(0.01, "fan_in", "normal", in_axis=0,
                                         out_axis=1),
        nn.initializers.zeros, name="conv")(h_BxLxE, decode)
    h_BxLxE = RGLRULayer(cfg.c, cfg.a_min, cfg.a_max, cfg.scan, cfg.init,
                         name="rg_lru")(h_BxLxE, decode)
    out_BxLxE = (h_BxLxE * y_BxLxE).astype(x_BxLxD.dtype)
    # recurrentgemma: the output layers' variance scaled by 2 / layers
    return dense(cfg.init, "rglru", x_BxLxD.shape[-1], "linear_out",
                 2 / cfg.num_layers)(out_BxLxE)


class GatedMlp(nn.Module):
  """Griffin's MLP block: W_d (GeLU(W_g x) * (W_u x)), hidden ratio * D."""
  ratio: int
  init_style: str = "flax"  # INITS: "authors" scales W_d's variance by 2 / layers
  num_layers: int = 1

  @nn.compact
  def __call__(self, x_BxLxD):
    hidden = self.ratio * x_BxLxD.shape[-1]
    proj = lambda width, name, scale=1.0: dense(self.init_style, "rglru", width,
                                                name, scale)
    h = nn.gelu(proj(hidden, "gate")(x_BxLxD)) * proj(hidden, "up")(x_BxLxD)
    return proj(x_BxLxD.shape[-1], "down", 2 / self.num_layers)(h)


class MambaBlock(nn.Module):
  """x + Dropout(Mamba(RMSNorm(x))): x [B, L, D] -> [B, L, D]. The block
  computes in the dtype of x (the norm's float32 scale is cast away)."""
  config: "MambaConfig"

  @nn.compact
  def __call__(self, x_BxLxD, train: bool = False, decode: bool = False):
    cfg = self.config
    h = nn.RMSNorm(cfg.norm_eps(), name="norm")(x_BxLxD).astype(x_BxLxD.dtype)
    h = MambaLayer(cfg.expand * cfg.width, cfg.state_size,
                   cfg.dt_rank or math.ceil(cfg.width / 16), cfg.conv_width,
                   cfg.dt_min, cfg.dt_max, cfg.dt_init_floor, cfg.scan,
                   cfg.init, cfg.num_layers, name="mamba")(h, decode)
    return x_BxLxD + nn.Dropout(cfg.dropout, deterministic=not train)(h)


class HawkBlock(nn.Module):
  """Hawk's residual block: the recurrent block, then the gated MLP block,
  each pre-norm residual: x [B, L, D] -> [B, L, D]."""
  config: "RGLRUConfig"

  @nn.compact
  def __call__(self, x_BxLxD, train: bool = False, decode: bool = False):
    cfg = self.config
    drop = nn.Dropout(cfg.dropout, deterministic=not train)
    # The norms' float32 scales would promote the block to float32: cast back.
    norm = lambda name, x: nn.RMSNorm(cfg.norm_eps(), name=name)(x).astype(x.dtype)
    h = HawkRecurrentBlock(cfg, name="temporal")(norm("norm_temporal", x_BxLxD),
                                                 decode)
    x_BxLxD = x_BxLxD + drop(h)
    h = GatedMlp(cfg.mlp_ratio, cfg.init, cfg.num_layers, name="mlp")(
        norm("norm_mlp", x_BxLxD))
    return x_BxLxD + drop(h)


@dataclasses.dataclass(frozen=True)
class SelectiveConfig:
  """`config.model` fields shared by `mamba` and `rglru`."""
  width: int = 128            # model width D
  num_layers: int = 1         # residual blocks
  dropout: float = 0.0        # dropout on each block's output, in training
  # sequential | recompute (lax.scan) | parallel (associative_scan). recompute:
  # the fastest train step of both models measured on CPU (docs/benchmarks.md).
  scan: str = "recompute"
  conv_width: int = 4         # J, taps of the causal depthwise convolution
  remat: bool = False         # recompute each block in the backward pass
  # The projections' initialisation (`kernel_init`): "flax" (Flax's defaults)
  # or "authors" (as state-spaces/mamba and recurrentgemma initialise them).
  init: str = "flax"

  def __post_init__(self):
    configs.check_positive("model", width=self.width, num_layers=self.num_layers,
                           conv_width=self.conv_width)
    configs.check_choice("model", "scan", self.scan, SCANS)
    configs.check_choice("model", "init", self.init, INITS)
    configs.check_probability("model", dropout=self.dropout)

  def block(self) -> type[nn.Module]:
    raise NotImplementedError

  def norm_eps(self) -> float:
    """The RMSNorms' epsilon: Flax's default, as recurrentgemma's."""
    return 1e-6

  def build(self, io: IOSpec) -> nn.Module:
    return SequenceModel(io=io, width=self.width, backbone=SelectiveStack(self))


@dataclasses.dataclass(frozen=True)
class MambaConfig(SelectiveConfig):
  """`config.model` fields of `mamba` (Gu & Dao 2023; defaults from the paper
  and state-spaces/mamba)."""
  state_size: int = 16        # N, state per channel
  expand: int = 2             # E = expand * D, the inner width
  dt_rank: int = 0            # I, rank of the delta projection; 0: ceil(D / 16)
  dt_min: float = 1e-3        # delta at init: log-uniform in [dt_min, dt_max]
  dt_max: float = 1e-1
  dt_init_floor: float = 1e-4  # smallest delta at init

  def __post_init__(self):
    super().__post_init__()
    configs.check_positive("model", state_size=self.state_size, expand=self.expand,
                           dt_min=self.dt_min, dt_init_floor=self.dt_init_floor)
    if self.dt_rank < 0:
      raise ConfigError(f"model.dt_rank must be >= 0, got {self.dt_rank}.")
    if not self.dt_min < self.dt_max:
      raise ConfigError(f"model.dt_min={self.dt_min} must be below "
                        f"model.dt_max={self.dt_max}.")

  def block(self) -> type[nn.Module]:
    return MambaBlock

  def norm_eps(self) -> float:
    """state-spaces/mamba's RMSNorm epsilon (norm_epsilon) is 1e-5."""
    return 1e-5 if self.init == "authors" else 1e-6


@dataclasses.dataclass(frozen=True)
class RGLRUConfig(SelectiveConfig):
  """`config.model` fields of `rglru`: Hawk (De et al. 2024), RG-LRU recurrent
  blocks and gated MLP blocks (defaults from the paper)."""
  rnn_width: int = 0          # E, width of the RG-LRU; 0: round(4 D / 3)
  c: float = 8.0              # a_t = sigmoid(Lambda)^(c r_t)
  a_min: float = 0.9          # a^c at init: uniform in [a_min, a_max]
  a_max: float = 0.999
  mlp_ratio: int = 3          # hidden width of the gated MLP, in units of D

  def __post_init__(self):
    super().__post_init__()
    configs.check_positive("model", c=self.c, mlp_ratio=self.mlp_ratio)
    if self.rnn_width < 0:
      raise ConfigError(f"model.rnn_width must be >= 0, got {self.rnn_width}.")
    if not 0 < self.a_min < self.a_max < 1:
      raise ConfigError(f"model.a_min={self.a_min} and model.a_max={self.a_max} "
                        "must satisfy 0 < a_min < a_max < 1.")

  def inner_width(self) -> int:
    return self.rnn_width or round(4 * self.width / 3)

  def block(self) -> type[nn.Module]:
    return HawkBlock


class SelectiveStack(nn.Module):
  """Residual blocks of Mamba or Hawk, then RMSNorm: x [B, L, D] -> [B, L, D]."""
  config: SelectiveConfig

  @nn.compact
  def __call__(self, x_BxLxD, *, train: bool = False, decode: bool = False):
    cfg = self.config
    # Arguments go by position so that remat can mark train and decode static.
    block = nn.remat(cfg.block(), static_argnums=(2, 3)) if cfg.remat else cfg.block()
    for i in range(cfg.num_layers):
      x_BxLxD = block(cfg, name=f"block_{i}")(x_BxLxD, train, decode)
    return nn.RMSNorm(cfg.norm_eps(), name="norm_final")(x_BxLxD)
