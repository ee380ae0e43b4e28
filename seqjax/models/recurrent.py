"""Recurrent backbones: a cell written from its equations, plus `lax.scan`.

Every cell is "parameters + a step function" fed by `lax.scan`, so compile time
does not grow with length. Two layout choices change speed, not the function
computed (results agree to float rounding, tested; speed measured on XLA's CPU
backend in docs/benchmarks.md):
- `scan_chunk`: the input projection xw = x W + b is computed for that many time
  steps at a time (one matmul per chunk; an outer scan over chunks, an inner one
  over steps). 1 projects inside the step, as flax.linen.RNN does; >= L hoists
  the whole projection out of the scan, as cuDNN does. On the CPU full hoisting
  is the slowest choice (a [L, B, G*R] buffer is written, then read back one step
  at a time, in both passes); 8, the default, is the fastest measured.
- W and U enter the scan as G column blocks (one per gate) and are concatenated
  inside the step. XLA hoists the concatenation out of the forward loop, and the
  backward loop accumulates the weight gradients in G blocks of [D, R] instead
  of one [D, G*R] buffer, which XLA:CPU does markedly faster.
The LSTM has a second implementation of the same layer, cuDNN's fused kernel
(`model.impl`, seqjax.models.cudnn_lstm), on the same parameters.
The state has the dtype of the recurrent update (float32 when `w_rec` is float32,
also under bfloat16 compute; see seqjax.precision).

Gate layouts, written once (the order along the last axis of W, U and b):
  lstm [i, f, g, o]  (Hochreiter & Schmidhuber 1997; forget gate Gers et al. 2000)
       z = x W + b + h U;  i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
       c' = f * c + i * g;  h' = o * tanh(c')
  gru  [r, z, n]  (Cho et al. 2014), in the cuDNN / PyTorch / flax.linen.GRUCell
       form: the reset gate multiplies the recurrent term *after* the matmul:
       r = sigmoid(x W_r + b_r + h U_r + c_r);  z = sigmoid(x W_z + b_z + h U_z + c_z)
       n = tanh(x W_n + b_n + r * (h U_n + c_n));  h' = (1 - z) * n + z * h
       (c is the recurrent bias, `b_rec`).
  rnn  (Elman 1990)  h' = act(x W + b + h U), act = tanh or relu.

Initialisation: W Glorot uniform; U orthogonal per gate block (scaled by
`rec_scale` for the Elman RNN, so the vanishing (tanh, small U) and exploding
(relu, large U) regimes can be set up on purpose); biases zero except the LSTM
forget block, which starts at `forget_bias` (1.0: Jozefowicz et al. 2015).

Shapes (legend in seqjax.interfaces; R is the recurrent hidden size): here also
G gates (blocks of R in W, U and b), C the steps of one `scan_chunk`, Q chunks.
"""

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models import cudnn_lstm
from seqjax.models.common import SequenceModel

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def orthogonal_blocks(num_blocks: int, scale: float = 1.0):
  """Initialiser for [R, num_blocks * R]: a scaled orthogonal R x R per block."""
  def init(key, shape, dtype=jnp.float32):
    rows, cols = shape
    keys = jax.random.split(key, num_blocks)
    blocks = [scale * nn.initializers.orthogonal()(k, (rows, cols // num_blocks),
                                                   dtype) for k in keys]
    return jnp.concatenate(blocks, axis=-1)
  return init


# Step functions: (params, carry, xw_BxG) -> (carry, h_BxR). They are the cells'
# equations and nothing else; tests check them against NumPy references.

def lstm_step(params, carry, xw_Bx4R):
  c_BxR, h_BxR = carry
  z_Bx4R = xw_Bx4R + h_BxR @ params["w_rec"]
  i, f, g, o = jnp.split(z_Bx4R, 4, axis=-1)
  c_BxR = jax.nn.sigmoid(f) * c_BxR + jax.nn.sigmoid(i) * jnp.tanh(g)
  h_BxR = jax.nn.sigmoid(o) * jnp.tanh(c_BxR)
  return (c_BxR, h_BxR), h_BxR


def gru_step(params, h_BxR, xw_Bx3R):
  hu_Bx3R = h_BxR @ params["w_rec"] + params["b_rec"][None]
  xr, xz, xn = jnp.split(xw_Bx3R, 3, axis=-1)
  hr, hz, hn = jnp.split(hu_Bx3R, 3, axis=-1)
  r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
  n = jnp.tanh(xn + r * hn)
  h_BxR = (1.0 - z) * n + z * h_BxR
  return h_BxR, h_BxR


def elman_step(activation: Callable):
  def step(params, h_BxR, xw_BxR):
    h_BxR = activation(xw_BxR + h_BxR @ params["w_rec"])
    return h_BxR, h_BxR
  return step


@dataclasses.dataclass(frozen=True)
class Cell:
  """What a recurrent layer needs to know about its cell."""
  gates: int                        # G: blocks of R in W, U and b
  step: Callable                    # (params, carry, xw_BxG) -> (carry, h_BxR)
  init_carry: Callable              # (batch, width, dtype) -> carry
  rec_scale: float = 1.0            # scale of the orthogonal recurrent init
  forget_bias: float | None = None  # LSTM: initial bias of the forget block
  rec_bias: bool = False            # GRU: a recurrent bias inside the reset gate


def _zeros(batch, width, dtype):
  return jnp.zeros((batch, width), dtype)


def chunked_scan(step, carry, x_LxBxD, project, chunk: int, reverse: bool = False):
  """`lax.scan(step, carry, project(x))`, projecting `chunk` steps at a time.

  `project` maps [..., D] -> [..., G] and is called inside the scan; with
  chunk > 1 the first L - L % chunk steps run as an outer scan over chunks and
  the last L % chunk steps as one more short chunk (with `reverse`, in the
  opposite order). Returns (carry, h [L, B, R]).
  """
  if chunk == 1:
    return jax.lax.scan(lambda c, x_BxD: step(c, project(x_BxD)), carry, x_LxBxD,
                        reverse=reverse)
  length = x_LxBxD.shape[0]
  head = length - length % chunk

  def run_chunk(carry, x_CxBxD):
    return jax.lax.scan(step, carry, project(x_CxBxD), reverse=reverse)

  def run_head(carry):
    x_QxCxBxD = x_LxBxD[:head].reshape(head // chunk, chunk, *x_LxBxD.shape[1:])
    carry, h_QxCxBxR = jax.lax.scan(run_chunk, carry, x_QxCxBxD, reverse=reverse)
    return carry, h_QxCxBxR.reshape(head, *h_QxCxBxR.shape[2:])

  parts = []
  if head:
    parts.append(run_head)
  if head < length:
    parts.append(lambda c: run_chunk(c, x_LxBxD[head:]))
  outputs = []
  for part in reversed(parts) if reverse else parts:
    carry, h = part(carry)
    outputs.append(h)
  if reverse:
    outputs.reverse()
  return carry, outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs)


def cell_params(module: nn.Module, cell: Cell, input_width: int, width: int):
  """Declares on `module` the parameters of one layer of `cell` and returns them
  as (w_in [input_width, G R], {"w_rec": [R, G R], "b_rec": [G R] (GRU)},
  bias [G R]): W Glorot-uniform, U an orthogonal block per gate scaled by
  `cell.rec_scale`, b zero but the LSTM's forget block at `cell.forget_bias`.
  Shared by `RecurrentLayer` and the decoder of `rnn_encdec`."""
  h = width
  w_in = module.param("w_in", nn.initializers.glorot_uniform(),
                      (input_width, cell.gates * h))
  params = {"w_rec": module.param(
      "w_rec", orthogonal_blocks(cell.gates, cell.rec_scale), (h, cell.gates * h))}
  def bias_init(_, shape):
    bias = jnp.zeros(shape)
    return bias if cell.forget_bias is None else bias.at[h:2 * h].set(
        cell.forget_bias)
  bias = module.param("bias", bias_init, (cell.gates * h,))
  if cell.rec_bias:
    params["b_rec"] = module.param("b_rec", nn.initializers.zeros,
                                   (cell.gates * h,))
  return w_in, params, bias


class RecurrentLayer(nn.Module):
  """One recurrent layer: x [B, L, D] -> h [B, L, R], by `lax.scan` over time.

  With `decode=True` the carry continues from, and is written back to, the
  "cache" collection (step-by-step generation). With `reverse=True` the scan runs
  from the last position to the first (the backward half of a bidirectional
  layer). With `remat=True` the step is recomputed in the backward pass
  (`jax.checkpoint`): only the carries are stored between the passes.
  `scan_chunk` sets how many steps share one input-projection matmul (see the
  module docstring); it changes speed, not the function computed.
  `impl="cudnn"` (LSTM cells only) runs the layer as cuDNN's fused kernel on the
  same parameters instead of the scan (seqjax.models.cudnn_lstm).
  """
  width: int
  cell: Cell
  reverse: bool = False
  remat: bool = False
  scan_chunk: int = 8
  return_carry: bool = False  # return (final carry, h) instead of h
  impl: str = "scan"          # scan | cudnn (LSTM only)

  @nn.compact
  def __call__(self, x_BxLxD, decode: bool = False):
    h, cell = self.width, self.cell
    w_in, params, bias = cell_params(self, cell, x_BxLxD.shape[-1], h)
    dtype = jnp.result_type(x_BxLxD, w_in, bias, params["w_rec"])
    carry = cell.init_carry(x_BxLxD.shape[0], h, dtype)
    if decode:  # continue from the state carried in the "cache" collection
      cache = self.variable("cache", "carry", lambda: carry)
      carry = cache.value
    if self.impl == "cudnn":
      if cell.step is not lstm_step or self.remat:
        raise ValueError("impl='cudnn' runs an LSTM cell without remat.")
      carry, h_BxLxR = cudnn_lstm.layer(x_BxLxD, carry, w_in, params["w_rec"],
                                        bias, self.reverse)
      carry = jax.tree_util.tree_map(lambda a: a.astype(dtype), carry)
      h_BxLxR = h_BxLxR.astype(dtype)
    else:
      carry, h_BxLxR = self._scan(x_BxLxD, carry, w_in, params, bias)
    if decode and not self.is_initializing():
      cache.value = carry
    return (carry, h_BxLxR) if self.return_carry else h_BxLxR

  def _scan(self, x_BxLxD, carry, w_in, params, bias):
    cell = self.cell
    # Per-gate column blocks, joined inside the scan (see the module docstring).
    split = lambda w: jnp.split(w, cell.gates, -1)
    w_in_blocks = split(w_in)
    rec_blocks = {k: split(v) if v.ndim == 2 else v for k, v in params.items()}
    step = lambda c, xw: cell.step(
        {k: jnp.concatenate(v, -1) if isinstance(v, list) else v
         for k, v in rec_blocks.items()}, c, xw)
    if self.remat:
      step = jax.checkpoint(step)
    def project(x_xD):
      xw = jnp.einsum("...d,dg->...g", x_xD, jnp.concatenate(w_in_blocks, -1))
      return xw + bias.reshape((1,) * (xw.ndim - 1) + (-1,))
    carry, h_LxBxR = chunked_scan(step, carry, jnp.swapaxes(x_BxLxD, 0, 1),
                                  project, self.scan_chunk, self.reverse)
    return carry, jnp.swapaxes(h_LxBxR, 0, 1)


@dataclasses.dataclass(frozen=True)
class RecurrentConfig:
  """`config.model` fields shared by the gated and plain recurrent models."""
  width: int = 128              # embedding and hidden size
  num_layers: int = 1           # stacked recurrent layers
  dropout: float = 0.0          # dropout between layers, in training
  residual: bool = False        # x + layer(x) around every layer but the first
  layer_norm: bool = False      # layer norm on each layer's input but the first
  bidirectional: bool = False   # a forward and a backward scan (encoders only)
  remat: bool = False           # recompute each step in the backward pass
  scan_chunk: int = 8           # steps per input-projection matmul (speed only)

  def __post_init__(self):
    configs.check_positive("model", width=self.width, num_layers=self.num_layers,
                           scan_chunk=self.scan_chunk)
    configs.check_probability("model", dropout=self.dropout)

  def cell(self) -> Cell:
    raise NotImplementedError

  def layer_impl(self) -> str:
    """`RecurrentLayer.impl` of this model's layers."""
    return "scan"

  def build(self, io: IOSpec) -> nn.Module:
    if self.bidirectional and io.kind == "lm":
      raise ConfigError(
          "model.bidirectional=True sees the future, so it cannot serve a task "
          "of kind 'lm' (causal, per-position); it is for encoders.")
    return SequenceModel(io=io, width=self.width, backbone=RecurrentStack(self))


LSTM_IMPLS = ("auto", "scan", "cudnn")


@dataclasses.dataclass(frozen=True)
class LSTMConfig(RecurrentConfig):
  """`config.model` fields of `lstm`.

  `impl` picks how a layer is computed, not what: `scan` (lax.scan of
  `lstm_step`), `cudnn` (cuDNN's fused kernel; a GPU only, no `remat`), or
  `auto`, cuDNN on a GPU when `remat` is off and the scan elsewhere, so that
  on a GPU the LSTM is timed on the kernel a PyTorch user's LSTM runs on
  (docs/accelerators.md). Both impls read the same parameters.
  """
  forget_bias: float = 1.0  # initial forget-gate bias
  impl: str = "auto"        # auto | scan | cudnn (GPU only)

  def __post_init__(self):
    super().__post_init__()
    configs.check_choice("model", "impl", self.impl, LSTM_IMPLS)
    if self.impl == "cudnn" and not cudnn_lstm.available():
      raise ConfigError(
          "model.impl='cudnn' runs cuDNN's LSTM kernel, which needs a GPU, but "
          f"JAX runs on {jax.default_backend()!r}; use 'scan' or 'auto'.")
    if self.impl == "cudnn" and self.remat:
      raise ConfigError(
          "model.impl='cudnn' keeps cuDNN's own saved activations; "
          "model.remat=True recomputes the scan's steps: use impl='scan' or "
          "remat=False.")

  def cell(self) -> Cell:
    return Cell(4, lstm_step, lambda b, h, d: (_zeros(b, h, d), _zeros(b, h, d)),
                forget_bias=self.forget_bias)

  def layer_impl(self) -> str:
    if self.impl == "auto":
      return "cudnn" if cudnn_lstm.available() and not self.remat else "scan"
    return self.impl


@dataclasses.dataclass(frozen=True)
class GRUConfig(RecurrentConfig):
  """`config.model` fields of `gru`."""

  def cell(self) -> Cell:
    return Cell(3, gru_step, _zeros, rec_bias=True)


@dataclasses.dataclass(frozen=True)
class RNNConfig(RecurrentConfig):
  """`config.model` fields of `rnn`, the Elman RNN."""
  activation: str = "tanh"  # tanh | relu
  rec_scale: float = 1.0    # U is rec_scale times an orthogonal matrix

  def __post_init__(self):
    super().__post_init__()
    configs.check_choice("model", "activation", self.activation,
                         tuple(ACTIVATIONS))
    configs.check_positive("model", rec_scale=self.rec_scale)

  def cell(self) -> Cell:
    return Cell(1, elman_step(ACTIVATIONS[self.activation]), _zeros,
                rec_scale=self.rec_scale)


class RecurrentStack(nn.Module):
  """Stacked recurrent layers: x [B, L, D] -> y [B, L, D]."""
  config: RecurrentConfig

  @nn.compact
  def __call__(self, x_BxLxD, *, train: bool = False, decode: bool = False):
    cfg = self.config
    if decode and cfg.bidirectional:
      raise ConfigError("A bidirectional model has no step-by-step decoding.")
    cell, impl = cfg.cell(), cfg.layer_impl()
    for i in range(cfg.num_layers):
      inputs = x_BxLxD
      if i > 0:
        inputs = nn.Dropout(cfg.dropout, deterministic=not train)(inputs)
        if cfg.layer_norm:
          inputs = nn.LayerNorm(name=f"norm_{i}")(inputs)
      y = RecurrentLayer(cfg.width, cell, remat=cfg.remat,
                         scan_chunk=cfg.scan_chunk, impl=impl,
                         name=f"layer_{i}")(inputs, decode)
      if cfg.bidirectional:
        backward = RecurrentLayer(cfg.width, cell, reverse=True, remat=cfg.remat,
                                  scan_chunk=cfg.scan_chunk, impl=impl,
                                  name=f"layer_{i}_backward")(inputs)
        y = nn.Dense(cfg.width, name=f"merge_{i}")(
            jnp.concatenate([y, backward], axis=-1))
      x_BxLxD = x_BxLxD + y if cfg.residual and i > 0 else y
    return x_BxLxD
