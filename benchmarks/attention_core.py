"""The attention function alone, forward + backward: seqjax's `xla` path against
`jax.nn.dot_product_attention(implementation="xla")` (and the blockwise path).

  python -m benchmarks.attention_core --batch=32 --length=256 --heads=4 --dim=64 --steps=20

Causal self-attention on random q, k, v [B, L, H, K]; loss sum(out * g); the
gradient with respect to q, k and v. Timed one each in turn (interleaved).
Prints one JSON line: median and min ms per implementation, and the largest
difference of the outputs from jax's.
"""

import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from benchmarks import machine
from seqjax.models import attention

_BATCH = flags.DEFINE_integer("batch", 32, "Batch size.")
_LENGTH = flags.DEFINE_integer("length", 256, "Sequence length.")
_HEADS = flags.DEFINE_integer("heads", 4, "Heads.")
_DIM = flags.DEFINE_integer("dim", 64, "Width per head.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps.")


def main(argv):
  del argv
  machine.setup()
  shape = (_BATCH.value, _LENGTH.value, _HEADS.value, _DIM.value)
  q, k, v, g = (jax.random.normal(key, shape)
                for key in jax.random.split(jax.random.key(0), 4))
  pos = jnp.arange(_LENGTH.value)
  impls = {
      "seqjax_xla": lambda q, k, v: attention.attention(q, k, v, impl="xla",
                                                        causal=True),
      "jax_dot_product_attention_xla": lambda q, k, v: jax.nn.dot_product_attention(
          q, k, v, mask=attention.visible(pos, pos, None, True),
          implementation="xla"),
      "seqjax_blockwise": lambda q, k, v: attention.attention(
          q, k, v, impl="blockwise", block_size=128, causal=True),
  }
  fns = {name: jax.jit(jax.value_and_grad(
      lambda q, k, v, f=f: jnp.sum(f(q, k, v) * g), argnums=(0, 1, 2)))
         for name, f in impls.items()}
  for fn in fns.values():
    jax.block_until_ready(fn(q, k, v))
  times = {name: [] for name in fns}
  for _ in range(_STEPS.value):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(q, k, v))
      times[name].append(time.perf_counter() - t0)
  want = impls["jax_dot_product_attention_xla"](q, k, v)
  result = dict(batch=_BATCH.value, length=_LENGTH.value, heads=_HEADS.value,
                dim=_DIM.value, steps=_STEPS.value,
                device=jax.devices()[0].device_kind)
  for name, t in times.items():
    result[name] = dict(
        ms=1e3 * statistics.median(t), min_ms=1e3 * min(t),
        max_abs_diff_from_jax=float(jnp.max(jnp.abs(impls[name](q, k, v) - want))))
  machine.emit(result)


if __name__ == "__main__":
  app.run(main)
