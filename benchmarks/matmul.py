"""XLA:CPU's matmul against PyTorch's at the shapes of the transformer's and the
LSTM's train steps, one matmul at a time.

  python -m benchmarks.matmul [--rows=8192 --width=256 --steps=20] [--torch] [--isa=avx2]

Each shape is timed in the three layouts a train step uses: NN (the forward,
x W), NT (the input gradient, g W^T) and TN (the weight gradient, x^T g). The
JAX side is one jitted `jnp.matmul` of the transposed views, so XLA picks its
own kernel: a YNNPACK fusion ("ynn") or Eigen's contraction ("eigen"), read
from the compiled HLO; "jax_eigen" is the same product compiled with YNNPACK
off (`xla_cpu_experimental_ynn_fusion_type=` for that executable), so the two
libraries are compared on the same shape. PyTorch (if installed and --torch; never a dependency
of seqjax) runs `torch.matmul` of the same views (MKL / oneDNN). "lstm_step"
is the recurrent matmul h U of one LSTM layer, [32, D] @ [D, 4D], rows / 32 of
them in a chain (a `lax.scan`; a Python loop for PyTorch). All timed one each in turn (medians),
so the load of a shared machine hits them alike. Prints one JSON line per
shape and layout with ms and GFLOP/s.
"""

import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from benchmarks import machine

_STEPS = flags.DEFINE_integer("steps", 20, "Timed calls of each matmul.")
_TORCH = flags.DEFINE_bool("torch", False, "Also time PyTorch, if installed.")
_ROWS = flags.DEFINE_integer("rows", 8192, "M: batch x length (32 x 256).")
_WIDTH = flags.DEFINE_integer("width", 256, "Model width D.")
LSTM_BATCH = 32  # the LSTM chain: [32, D] @ [D, 4D], rows / 32 steps


def shapes(rows: int, width: int) -> dict:
  """name -> (M, K, N) of the forward product x [M, K] @ W [K, N]."""
  return {"qkv": (rows, width, 3 * width), "mlp_up": (rows, width, 4 * width),
          "mlp_down": (rows, 4 * width, width), "attn_out": (rows, width, width)}


def operands(layout: str, m: int, k: int, n: int):
  """Shapes of the two stored arrays and the product they give: NN x W,
  NT g W^T ([M, N] @ [K, N]^T -> [M, K]), TN x^T g ([M, K]^T @ [M, N])."""
  return {"NN": ((m, k), (k, n)), "NT": ((m, n), (k, n)),
          "TN": ((m, k), (m, n))}[layout]


def product(layout: str, xp):
  """The product as a function of the two stored arrays, for jnp or torch."""
  if layout == "NN":
    return lambda a, b: xp.matmul(a, b)
  if layout == "NT":
    return lambda a, b: xp.matmul(a, b.T)
  return lambda a, b: xp.matmul(a.T, b)


NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}


def jax_matmul(layout: str, m: int, k: int, n: int, options=None):
  shape_a, shape_b = operands(layout, m, k, n)
  a = jax.random.normal(jax.random.key(0), shape_a)
  b = jax.random.normal(jax.random.key(1), shape_b)
  compiled = jax.jit(product(layout, jnp)).lower(a, b).compile(
      compiler_options=options)
  kernel = "ynn" if "__ynn_fusion" in compiled.as_text() else "eigen"

  def call():
    compiled(a, b).block_until_ready()

  return call, kernel


def jax_lstm_chain(width: int, steps: int, options=None):
  batch, gates = LSTM_BATCH, 4 * width
  u = jax.random.normal(jax.random.key(0), (width, gates)) / width**0.5
  h = jax.random.normal(jax.random.key(1), (batch, width))

  def chain(h, u):
    def body(h, _):
      return jnp.matmul(h, u)[:, :width], None
    return jax.lax.scan(body, h, None, length=steps)[0]

  compiled = jax.jit(chain).lower(h, u).compile(compiler_options=options)
  kernel = "ynn" if "__ynn_fusion" in compiled.as_text() else "eigen"

  def call():
    compiled(h, u).block_until_ready()

  return call, kernel


def torch_calls(rows: int, width: int):
  """name -> callable for each timed product, or None without torch."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  calls = {}
  for name, (m, k, n) in shapes(rows, width).items():
    for layout in ("NN", "NT", "TN"):
      shape_a, shape_b = operands(layout, m, k, n)
      a, b = torch.randn(shape_a), torch.randn(shape_b)
      calls[name, layout] = (lambda f, a, b: lambda: f(a, b))(
          product(layout, torch), a, b)
  batch, gates, steps = LSTM_BATCH, 4 * width, rows // LSTM_BATCH
  u, h0 = torch.randn(width, gates) / width**0.5, torch.randn(batch, width)

  def chain():
    h = h0
    for _ in range(steps):
      h = torch.matmul(h, u)[:, :width]

  calls["lstm_step", "NN"] = chain
  return calls


def main(argv):
  del argv
  machine.setup()
  rows, width = _ROWS.value, _WIDTH.value
  products = dict(shapes(rows, width), lstm_step=(rows, width, 4 * width))
  calls, kernels = {}, {}
  for name, (m, k, n) in shapes(rows, width).items():
    for layout in ("NN", "NT", "TN"):
      calls["jax", name, layout], kernels[name, layout] = jax_matmul(layout, m, k, n)
      if kernels[name, layout] == "ynn":
        calls["jax_eigen", name, layout], _ = jax_matmul(layout, m, k, n, NO_YNN)
  calls["jax", "lstm_step", "NN"], kernels["lstm_step", "NN"] = jax_lstm_chain(
      width, rows // LSTM_BATCH)
  calls["jax_eigen", "lstm_step", "NN"], _ = jax_lstm_chain(
      width, rows // LSTM_BATCH, NO_YNN)
  if _TORCH.value:
    for key, call in (torch_calls(rows, width) or {}).items():
      calls[("torch",) + key] = call
  for call in calls.values():
    call()  # warm-up
  times = {key: [] for key in calls}
  for _ in range(_STEPS.value):
    for key, call in calls.items():
      t0 = time.perf_counter()
      call()
      times[key].append(time.perf_counter() - t0)
  for (name, layout), kernel in kernels.items():
    m, k, n = products[name]
    gflop = 2 * m * k * n / 1e9
    row = dict(shape=name, layout=layout, m=m, k=k, n=n, gflop=gflop,
               xla_kernel=kernel, steps=_STEPS.value)
    for side in ("jax", "jax_eigen", "torch"):
      if (side, name, layout) in times:
        t = times[side, name, layout]
        row[side] = dict(ms=1e3 * statistics.median(t), min_ms=1e3 * min(t),
                         gflop_per_s=gflop / statistics.median(t))
    if "torch" in row:
      row["torch_over_jax"] = row["torch"]["ms"] / row["jax"]["ms"]
    machine.emit(row)


if __name__ == "__main__":
  app.run(main)
