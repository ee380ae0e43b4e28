"""The LSTM layer through cuDNN's fused kernel (`jax.experimental.rnn`), on our
parameters.

cuDNN computes the cell of `recurrent.lstm_step` with the same gate order
[i, f, g, o], written z = x W_ih^T + b_ih + h W_hh^T + b_hh, and takes its
weights as one flat float32 vector; for one layer and one direction:
  (W_ih [4R, D], W_hh [4R, R], b_ih [4R], b_hh [4R])  (jax.experimental.rnn's
module docstring; `rnn.unpack_lstm_weights` reads it back).
Our layer keeps w_in [D, 4R], w_rec [R, 4R] and one bias [4R]. `pack` writes
them into cuDNN's vector (W_ih = w_in^T, W_hh = w_rec^T, b_ih = bias, b_hh = 0)
inside the forward pass, so the parameter tree is the same for `impl=scan` and
`impl=cudnn` and a checkpoint moves between them; `unpack` is its inverse
(bias = b_ih + b_hh). Gradients flow back through the packing.

cuDNN runs in float32 only: the inputs and weights are cast to float32 (under
`train.compute_dtype=bfloat16` the scan's input projection is bfloat16, so the
two impls then differ by that rounding); TF32 follows
`jax_default_matmul_precision` as XLA's own matmuls do. The kernel has no
batching rule, so under `vmap` (a trial group) its forward and backward halves
run once per trial in a loop (`jax.custom_batching.sequential_vmap`).

`KERNEL` is the pair (forward, backward) that runs: `CUDNN` on a GPU;
`REFERENCE`, the same computation by `rnn.lstm_ref` (JAX's own reference for
cuDNN's layout), lets the packing and the vmap wrapping be tested on a CPU.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import rnn


def available() -> bool:
  """Whether cuDNN's LSTM can run: JAX's default backend is a GPU."""
  return jax.default_backend() == "gpu"


def pack(w_in, w_rec, bias):
  """Our (w_in [D, 4R], w_rec [R, 4R], bias [4R]) as cuDNN's flat vector."""
  return jnp.concatenate([w_in.T.ravel(), w_rec.T.ravel(), bias,
                          jnp.zeros_like(bias)])


def unpack(weights, input_width: int, width: int):
  """cuDNN's flat vector of one layer as our (w_in, w_rec, bias)."""
  w_ih, w_hh, b_ih, b_hh = (
      part[0] for part in rnn.unpack_lstm_weights(weights, input_width, width,
                                                  1, False))
  return w_ih.T, w_hh.T, b_ih + b_hh


class Kernel(NamedTuple):
  """One fused LSTM layer as a forward and a backward half (a custom VJP)."""
  # (x, h_0, c_0, weights, seq_lengths, D, R) -> ((y, h_n, c_n), residuals)
  fwd: Callable
  # (D, R, residuals, (dy, dh_n, dc_n)) -> (dx, dh_0, dc_0, dweights, _)
  bwd: Callable


def _cudnn_fwd(x, h_0, c_0, weights, seq_lengths, input_width, width):
  return rnn.lstm_fwd(x, h_0, c_0, weights, seq_lengths, input_width, width, 1,
                      0.0, False, None)


def _cudnn_bwd(input_width, width, residuals, cotangents):
  return rnn.lstm_bwd(input_width, width, 1, 0.0, False, None, residuals,
                      cotangents)


def _reference(x, h_0, c_0, weights, seq_lengths, input_width, width):
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, input_width, width,
                                                   1, False)
  return rnn.lstm_ref(x, h_0, c_0, w_ih, w_hh, b_ih, b_hh, seq_lengths,
                      input_width, width, 1, 0.0, False)


def _reference_fwd(x, h_0, c_0, weights, seq_lengths, input_width, width):
  out = _reference(x, h_0, c_0, weights, seq_lengths, input_width, width)
  return out, (x, h_0, c_0, weights, seq_lengths)


def _reference_bwd(input_width, width, residuals, cotangents):
  *args, seq_lengths = residuals
  _, vjp = jax.vjp(lambda *a: _reference(*a, seq_lengths, input_width, width),
                   *args)
  return (*vjp(cotangents), None)


CUDNN = Kernel(_cudnn_fwd, _cudnn_bwd)
REFERENCE = Kernel(_reference_fwd, _reference_bwd)
KERNEL = CUDNN


def _fused(kernel: Kernel, input_width: int, width: int):
  """(x, h_0, c_0, weights) -> (y, h_n, c_n) with `kernel`'s VJP, looped per
  example under vmap."""
  def fwd(x, h_0, c_0, weights):
    seq_lengths = jnp.full(x.shape[:1], x.shape[1], jnp.int32)
    return kernel.fwd(x, h_0, c_0, weights, seq_lengths, input_width, width)

  def bwd(residuals, cotangents):
    return kernel.bwd(input_width, width, residuals, cotangents)[:4]

  fwd = jax.custom_batching.sequential_vmap(fwd)
  bwd = jax.custom_batching.sequential_vmap(bwd)

  @jax.custom_vjp
  def lstm(x, h_0, c_0, weights):
    return fwd(x, h_0, c_0, weights)[0]

  lstm.defvjp(fwd, bwd)
  return lstm


def layer(x_BxLxD, carry, w_in, w_rec, bias, reverse: bool = False):
  """One LSTM layer by `KERNEL`: (carry (c, h) [B, R] each, x [B, L, D]) ->
  (final carry, h [B, L, R]), all float32; with `reverse`, from the last
  position to the first (as `recurrent.RecurrentLayer`)."""
  f32 = lambda a: a.astype(jnp.float32)
  input_width, width = w_in.shape[0], w_rec.shape[0]
  c_BxR, h_BxR = carry
  x_BxLxD = f32(x_BxLxD)
  if reverse:
    x_BxLxD = jnp.flip(x_BxLxD, 1)
  lstm = _fused(KERNEL, input_width, width)
  h_BxLxR, h_n, c_n = lstm(x_BxLxD, f32(h_BxR)[None], f32(c_BxR)[None],
                           pack(f32(w_in), f32(w_rec), f32(bias)))
  if reverse:
    h_BxLxR = jnp.flip(h_BxLxR, 1)
  return (c_n[0], h_n[0]), h_BxLxR
