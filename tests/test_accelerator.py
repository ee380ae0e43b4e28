"""The GPU paths, on a GPU: skipped elsewhere; `python -m benchmarks.accelerator`
runs them (`pytest -m accelerator`) and records the outcome.

cuDNN attention against the xla path in float32 and bfloat16 (values and
gradients); the LSTM's cuDNN kernel against its scan (values and gradients, at
full float32 matmul precision); the bfloat16 policy on the device; one sharded
train step over all local devices against the same step on one device.
"""

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

import helpers
from seqjax import experiment
from seqjax import precision
from seqjax import stepping
from seqjax.models import attention
from seqjax.models import recurrent

pytestmark = [
    pytest.mark.accelerator,
    pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU"),
]
# Per dtype: the tolerance of two implementations of the same float function
# (bfloat16 keeps 8 bits of mantissa).
TOLERANCE = {jnp.float32: dict(rtol=1e-5, atol=1e-5),
             jnp.bfloat16: dict(rtol=2e-2, atol=2e-2)}


def assert_trees_close(got, want, dtype):
  jax.tree_util.tree_map(
      lambda g, w: onp.testing.assert_allclose(
          onp.asarray(g, onp.float32), onp.asarray(w, onp.float32),
          **TOLERANCE[dtype]), got, want)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_cudnn_attention_equals_xla(dtype, causal):
  q, k, v = (jax.random.normal(key, (2, 128, 4, 64), dtype)
             for key in jax.random.split(jax.random.key(0), 3))

  def loss(impl):
    def f(q, k, v):
      out = attention.attention(q, k, v, impl=impl, causal=causal)
      return jnp.sum(jnp.sin(out.astype(jnp.float32))), out
    return jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)

  with jax.default_matmul_precision("highest"):
    assert_trees_close(loss("cudnn")(q, k, v), loss("xla")(q, k, v), dtype)


@pytest.mark.parametrize("length", [1, 64, 1000])
def test_cudnn_lstm_equals_scan(length):
  cell = recurrent.LSTMConfig(impl="scan").cell()
  scan = recurrent.RecurrentLayer(32, cell)
  fused = recurrent.RecurrentLayer(32, cell, impl="cudnn")
  x = jax.random.normal(jax.random.key(0), (4, length, 16))
  params = scan.init(jax.random.key(1), x)["params"]

  def loss(layer):
    f = lambda p, x: jnp.sum(jnp.sin(layer.apply({"params": p}, x)))
    return jax.value_and_grad(f, argnums=(0, 1))

  with jax.default_matmul_precision("highest"):
    assert_trees_close(loss(fused)(params, x), loss(scan)(params, x),
                       jnp.float32)


def test_bfloat16_policy_on_the_device():
  """One bfloat16 step keeps float32 parameters and a loss within bfloat16
  rounding of the float32 step's."""
  config = helpers.tiny_copy_memory_config()
  losses = {}
  for dtype in ("float32", "bfloat16"):
    config.train.compute_dtype = dtype
    exp = experiment.build(config)
    state = experiment.init_state(exp)
    cast = precision.cast_params(state.params, precision.DTYPES[dtype])
    if dtype == "bfloat16":
      kept = {jnp.dtype(x.dtype) for x in jax.tree_util.tree_leaves(cast)}
      assert kept == {jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)}
    batch = stepping.make_batch_fn(exp, experiment.TRAIN)(0)
    state, metrics = stepping.make_train_step(exp)(state, batch)
    assert {x.dtype for x in jax.tree_util.tree_leaves(state.params)} == {
        jnp.dtype(jnp.float32)}
    losses[dtype] = float(metrics["loss"])
  onp.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=2e-2)


def test_sharded_train_step_equals_one_device():
  n = jax.local_device_count()
  config = helpers.tiny_copy_memory_config()
  config.train.batch_size = 4 * n
  params = {}
  for data in (1, -1):
    config.mesh = {"data": data}
    exp = experiment.build(config)
    state = experiment.init_state(exp)
    batch = stepping.make_batch_fn(exp, experiment.TRAIN)(0)
    with jax.default_matmul_precision("highest"):
      state, _ = stepping.make_train_step(exp)(state, batch)
    params[data] = jax.device_get(state.params)
  assert_trees_close(params[-1], params[1], jnp.float32)
