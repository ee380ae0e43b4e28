"""One LSTM layer, forward + backward, in the layouts that docs/benchmarks.md
compares: seqjax's RecurrentLayer (per-gate weight blocks in the scan, input
projection of `scan_chunk` steps per matmul) against the same equations with
one [D, 4R] weight, projected inside the step or fully hoisted out of the scan,
and seqjax's layer with a custom VJP for the recurrent matmul h U whose backward
uses a U^T transposed once outside the scan (measured, not adopted: a custom VJP
removes forward-mode differentiation, which diagnostics.state_jacobian_norms uses).

  python -m benchmarks.recurrent_layouts --batch=32 --length=256 --width=256 --steps=15

Loss sum(h * g); gradients with respect to the parameters and the input. Timed
one each in turn (interleaved). Prints one JSON line: median and min ms per
layout, and the largest gradient difference from seqjax's layer; and a roofline:
the layer's matmul work (six [B*L, D] x [D, 4R]-sized products, forward and
backward), the rate of one such product as a single big matmul on this machine
(`matmul_gflops`), and the time the work would take at that rate.
"""

import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from benchmarks import machine
from seqjax.models import recurrent

_BATCH = flags.DEFINE_integer("batch", 32, "Batch size.")
_LENGTH = flags.DEFINE_integer("length", 256, "Sequence length.")
_WIDTH = flags.DEFINE_integer("width", 256, "Input and hidden width.")
_STEPS = flags.DEFINE_integer("steps", 15, "Timed steps.")


def one_weight(params, x_BxLxD, hoisted: bool):
  """lax.scan of recurrent.lstm_step with W and U as single [D, 4R] arrays."""
  w_in, w_rec, bias = params["w_in"], params["w_rec"], params["bias"]
  x_LxBxD = jnp.swapaxes(x_BxLxD, 0, 1)
  step = lambda c, xw: recurrent.lstm_step({"w_rec": w_rec}, c, xw)
  if hoisted:
    xs = jnp.einsum("lbd,dg->lbg", x_LxBxD, w_in) + bias[None, None]
  else:
    xs = x_LxBxD
    inner = step
    step = lambda c, x: inner(c, x @ w_in + bias[None])
  zeros = jnp.zeros((x_BxLxD.shape[0], w_rec.shape[0]), x_BxLxD.dtype)
  _, h_LxBxR = jax.lax.scan(step, (zeros, zeros), xs)
  return jnp.swapaxes(h_LxBxR, 0, 1)


@jax.custom_vjp
def rec_matmul(h_BxR, u_Rx4R, ut_4RxR):
  return h_BxR @ u_Rx4R


def _rec_matmul_fwd(h_BxR, u_Rx4R, ut_4RxR):
  return h_BxR @ u_Rx4R, (h_BxR, ut_4RxR)


def _rec_matmul_bwd(residuals, dz_Bx4R):
  h_BxR, ut_4RxR = residuals
  return dz_Bx4R @ ut_4RxR, h_BxR.T @ dz_Bx4R, None


rec_matmul.defvjp(_rec_matmul_fwd, _rec_matmul_bwd)


def custom_vjp_step(params, carry, xw_Bx4R):
  """recurrent.lstm_step with h U through `rec_matmul`."""
  c_BxR, h_BxR = carry
  z_Bx4R = xw_Bx4R + rec_matmul(h_BxR, params["w_rec"], params["w_rec_t"])
  i, f, g, o = jnp.split(z_Bx4R, 4, axis=-1)
  c_BxR = jax.nn.sigmoid(f) * c_BxR + jax.nn.sigmoid(i) * jnp.tanh(g)
  h_BxR = jax.nn.sigmoid(o) * jnp.tanh(c_BxR)
  return (c_BxR, h_BxR), h_BxR


def custom_vjp_layer(params, x_BxLxD, chunk):
  """seqjax's layout (per-gate blocks, chunked projection) with `rec_matmul`."""
  blocks = {k: jnp.split(params[k], 4, -1) for k in ("w_in", "w_rec")}
  join = lambda k: jnp.concatenate(blocks[k], -1)
  w_rec_t = params["w_rec"].T
  step = lambda c, xw: custom_vjp_step(
      {"w_rec": join("w_rec"), "w_rec_t": w_rec_t}, c, xw)
  def project(x_xD):
    xw = jnp.einsum("...d,dg->...g", x_xD, join("w_in"))
    return xw + params["bias"].reshape((1,) * (xw.ndim - 1) + (-1,))
  zeros = jnp.zeros((x_BxLxD.shape[0], params["w_rec"].shape[0]), x_BxLxD.dtype)
  _, h_LxBxR = recurrent.chunked_scan(step, (zeros, zeros),
                                      jnp.swapaxes(x_BxLxD, 0, 1), project, chunk)
  return jnp.swapaxes(h_LxBxR, 0, 1)


def main(argv):
  del argv
  machine.setup()
  b, l, d = _BATCH.value, _LENGTH.value, _WIDTH.value
  x, g = (jax.random.normal(k, (b, l, d)) for k in jax.random.split(jax.random.key(0), 2))
  cell = recurrent.LSTMConfig().cell()
  layers = {c: recurrent.RecurrentLayer(d, cell, scan_chunk=c) for c in (1, 8)}
  params = layers[1].init(jax.random.key(1), x)["params"]
  layouts = {f"seqjax_scan_chunk_{c}": (lambda p, x, m=m: m.apply({"params": p}, x))
             for c, m in layers.items()}
  for c in (1, 8):
    layouts[f"custom_vjp_scan_chunk_{c}"] = (
        lambda p, x, c=c: custom_vjp_layer(p, x, c))
  layouts["one_weight_in_step"] = lambda p, x: one_weight(p, x, hoisted=False)
  layouts["one_weight_hoisted"] = lambda p, x: one_weight(p, x, hoisted=True)
  fns = {name: jax.jit(jax.grad(lambda p, x, f=f: jnp.sum(f(p, x) * g),
                                argnums=(0, 1)))
         for name, f in layouts.items()}
  grads = {name: fn(params, x) for name, fn in fns.items()}
  times = {name: [] for name in fns}
  for _ in range(_STEPS.value):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(params, x))
      times[name].append(time.perf_counter() - t0)
  ref = jax.tree_util.tree_leaves(grads["seqjax_scan_chunk_1"])
  x_NxD, w_Dx4R = x.reshape(-1, d), params["w_in"]
  matmul = jax.jit(lambda a, w: a @ w)
  jax.block_until_ready(matmul(x_NxD, w_Dx4R))
  matmul_s = []
  for _ in range(_STEPS.value):
    t0 = time.perf_counter()
    jax.block_until_ready(matmul(x_NxD, w_Dx4R))
    matmul_s.append(time.perf_counter() - t0)
  gflop = 2 * b * l * d * 4 * d / 1e9
  gflops = gflop / statistics.median(matmul_s)
  result = dict(batch=b, length=l, width=d, steps=_STEPS.value,
                device=jax.devices()[0].device_kind, matmul_gflops=gflops,
                layer_matmul_gflop=6 * gflop,
                roofline_ms=1e3 * 6 * gflop / gflops)
  for name, t in times.items():
    diff = max(float(jnp.max(jnp.abs(a - r)))
               for a, r in zip(jax.tree_util.tree_leaves(grads[name]), ref))
    result[name] = dict(ms=1e3 * statistics.median(t), min_ms=1e3 * min(t),
                        max_grad_diff=diff)
  machine.emit(result)


if __name__ == "__main__":
  app.run(main)
