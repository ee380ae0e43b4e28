"""One LSTM layer, forward + backward, in the layouts that docs/benchmarks.md
compares: seqjax's RecurrentLayer (per-gate weight blocks in the scan, input
projection of `scan_chunk` steps per matmul) against the same equations with
one [D, 4H] weight, projected inside the step or fully hoisted out of the scan.

  python -m benchmarks.recurrent_layouts --batch=32 --length=256 --width=256 --steps=15

Loss sum(h * g); gradients with respect to the parameters and the input. Timed
one each in turn (interleaved). Prints one JSON line: median and min ms per
layout, and the largest gradient difference from seqjax's layer.
"""

import json
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from seqjax.models import recurrent

_BATCH = flags.DEFINE_integer("batch", 32, "Batch size.")
_LENGTH = flags.DEFINE_integer("length", 256, "Sequence length.")
_WIDTH = flags.DEFINE_integer("width", 256, "Input and hidden width.")
_STEPS = flags.DEFINE_integer("steps", 15, "Timed steps.")


def one_weight(params, x_BxLxD, hoisted: bool):
  """lax.scan of recurrent.lstm_step with W and U as single [D, 4H] arrays."""
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
  _, h_LxBxH = jax.lax.scan(step, (zeros, zeros), xs)
  return jnp.swapaxes(h_LxBxH, 0, 1)


def main(argv):
  del argv
  b, l, d = _BATCH.value, _LENGTH.value, _WIDTH.value
  x, g = (jax.random.normal(k, (b, l, d)) for k in jax.random.split(jax.random.key(0), 2))
  cell = recurrent.LSTMConfig().cell()
  layers = {c: recurrent.RecurrentLayer(d, cell, scan_chunk=c) for c in (1, 8)}
  params = layers[1].init(jax.random.key(1), x)["params"]
  layouts = {f"seqjax_scan_chunk_{c}": (lambda p, x, m=m: m.apply({"params": p}, x))
             for c, m in layers.items()}
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
  result = dict(batch=b, length=l, width=d, steps=_STEPS.value,
                device=jax.devices()[0].device_kind)
  for name, t in times.items():
    diff = max(float(jnp.max(jnp.abs(a - r)))
               for a, r in zip(jax.tree_util.tree_leaves(grads[name]), ref))
    result[name] = dict(ms=1e3 * statistics.median(t), min_ms=1e3 * min(t),
                        max_grad_diff=diff)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
