"""The LSTM's cuDNN path on a CPU: our parameters packed into cuDNN's flat
layout and run by `jax.experimental.rnn.lstm_ref` (JAX's reference for that
layout) agree with the scan in values and gradients, also in a trial group
(vmap) and from a checkpoint written by the other impl; `impl='cudnn'` without
a GPU is a ConfigError. On a GPU, tests/test_accelerator.py runs the real
kernel against the scan."""

import dataclasses

import jax
import jax.numpy as jnp
from jax.experimental import rnn
import numpy as onp
import pytest

from seqjax import checkpoints
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec
from seqjax.models import cudnn_lstm
from seqjax.models import recurrent

D, R = 3, 5


@pytest.fixture
def reference_kernel(monkeypatch):
  """The cuDNN path with `lstm_ref` for the kernel, and a GPU pretended."""
  monkeypatch.setattr(cudnn_lstm, "KERNEL", cudnn_lstm.REFERENCE)
  monkeypatch.setattr(cudnn_lstm, "available", lambda: True)


def layer_params(key, layer, x):
  """`layer`'s parameters with every entry perturbed (non-zero biases)."""
  params = layer.init(key, x)["params"]
  return jax.tree_util.tree_map(
      lambda p: p + 0.1 * jax.random.normal(jax.random.key(7), p.shape), params)


def test_packing_is_cudnn_layout_and_unpacks_exactly():
  k = jax.random.split(jax.random.key(0), 3)
  w_in = jax.random.normal(k[0], (D, 4 * R))
  w_rec = jax.random.normal(k[1], (R, 4 * R))
  bias = jax.random.normal(k[2], (4 * R,))
  flat = cudnn_lstm.pack(w_in, w_rec, bias)
  assert flat.shape == (rnn.get_num_params_in_lstm(D, R, 1, False),)
  w_ih, w_hh, b_ih, b_hh = (p[0] for p in rnn.unpack_lstm_weights(flat, D, R, 1,
                                                                   False))
  onp.testing.assert_array_equal(w_ih, w_in.T)
  onp.testing.assert_array_equal(w_hh, w_rec.T)
  onp.testing.assert_array_equal(b_ih, bias)
  onp.testing.assert_array_equal(b_hh, 0.0)
  for got, want in zip(cudnn_lstm.unpack(flat, D, R), (w_in, w_rec, bias)):
    onp.testing.assert_array_equal(got, want)


def test_unpack_sums_cudnns_two_biases():
  flat = rnn.init_lstm_weight(jax.random.key(0), D, R, 1, False)
  _, _, bias = cudnn_lstm.unpack(flat, D, R)
  _, _, b_ih, b_hh = rnn.unpack_lstm_weights(flat, D, R, 1, False)
  onp.testing.assert_array_equal(bias, b_ih[0] + b_hh[0])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 7, 16])
def test_cudnn_layout_equals_scan_values_and_gradients(reference_kernel, length,
                                                       reverse):
  cell = recurrent.LSTMConfig().cell()
  scan = recurrent.RecurrentLayer(R, cell, reverse=reverse, return_carry=True)
  fused = recurrent.RecurrentLayer(R, cell, reverse=reverse, return_carry=True,
                                   impl="cudnn")
  x = jax.random.normal(jax.random.key(0), (2, length, D))
  params = layer_params(jax.random.key(1), scan, x)

  def loss(layer):
    def f(params, x):
      (c, h), y = layer.apply({"params": params}, x)
      return jnp.sum(jnp.sin(y)) + jnp.sum(c * h)
    return jax.value_and_grad(f, argnums=(0, 1))

  want, got = loss(scan)(params, x), loss(fused)(params, x)
  jax.tree_util.tree_map(
      lambda g, w: onp.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6),
      got, want)


def test_cudnn_layout_in_a_trial_group_equals_scan(reference_kernel):
  """Under vmap over trials the kernel's halves loop per trial; the gradients
  are each trial's own."""
  cell = recurrent.LSTMConfig().cell()
  scan = recurrent.RecurrentLayer(R, cell)
  fused = recurrent.RecurrentLayer(R, cell, impl="cudnn")
  x = jax.random.normal(jax.random.key(0), (3, 2, 7, D))
  params = jax.vmap(lambda k: layer_params(k, scan, x[0]))(
      jax.random.split(jax.random.key(1), 3))
  grad = lambda layer: jax.vmap(jax.grad(
      lambda p, x: jnp.sum(jnp.sin(layer.apply({"params": p}, x)))))
  jax.tree_util.tree_map(
      lambda g, w: onp.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6),
      grad(fused)(params, x), grad(scan)(params, x))


def test_checkpoint_of_one_impl_restores_into_the_other(reference_kernel,
                                                        tmp_path):
  io = IOSpec(kind="lm", length=6, output_size=5, input_vocab=5)
  cfg = recurrent.LSTMConfig(width=R, num_layers=2, impl="scan")
  scan, fused = (dataclasses.replace(cfg, impl=i).build(io)
                 for i in ("scan", "cudnn"))
  tokens = jax.random.randint(jax.random.key(0), (2, 6), 0, 5)
  params = scan.init(jax.random.key(1), tokens)["params"]
  mngr = checkpoints.manager(str(tmp_path), 1, "loss", "min")
  checkpoints.save(mngr, 1, {"params": params}, {"loss": 0.0})
  mngr.wait_until_finished()
  abstract = {"params": jax.eval_shape(
      lambda: fused.init(jax.random.key(2), tokens)["params"])}
  restored = checkpoints.restore(mngr, 1, abstract)["params"]
  onp.testing.assert_allclose(fused.apply({"params": restored}, tokens),
                              scan.apply({"params": params}, tokens),
                              rtol=1e-5, atol=1e-6)


def test_cudnn_decoding_continues_the_carry(reference_kernel):
  io = IOSpec(kind="lm", length=6, output_size=5, input_vocab=5)
  model = recurrent.LSTMConfig(width=R, impl="cudnn").build(io)
  tokens = jax.random.randint(jax.random.key(0), (2, 6), 0, 5)
  variables = model.init(jax.random.key(1), tokens)
  full = model.apply(variables, tokens)
  cache = model.init(jax.random.key(1), tokens[:, :1], decode=True)["cache"]
  steps = []
  for t in range(6):
    out, mutated = model.apply({"params": variables["params"], "cache": cache},
                               tokens[:, t:t + 1], decode=True, mutable=["cache"])
    cache = mutated["cache"]
    steps.append(out)
  onp.testing.assert_allclose(jnp.concatenate(steps, 1), full, rtol=1e-5,
                              atol=1e-6)


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="cuDNN runs on a GPU")
def test_cudnn_without_a_gpu_is_a_config_error():
  with pytest.raises(ConfigError, match="impl='cudnn'.*needs a GPU"):
    recurrent.LSTMConfig(impl="cudnn")


def test_auto_is_cudnn_on_a_gpu_without_remat(monkeypatch):
  monkeypatch.setattr(cudnn_lstm, "available", lambda: False)
  assert recurrent.LSTMConfig().layer_impl() == "scan"
  monkeypatch.setattr(cudnn_lstm, "available", lambda: True)
  assert recurrent.LSTMConfig().layer_impl() == "cudnn"
  assert recurrent.LSTMConfig(remat=True).layer_impl() == "scan"
  assert recurrent.LSTMConfig(impl="scan").layer_impl() == "scan"


@pytest.mark.parametrize("fields,match", [
    (dict(impl="fused"), "model.impl"),
    (dict(impl="cudnn", remat=True), "remat"),
])
def test_bad_impl_is_a_config_error(reference_kernel, fields, match):
  with pytest.raises(ConfigError, match=match):
    recurrent.LSTMConfig(**fields)
