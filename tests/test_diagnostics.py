"""Diagnostics measure what they claim: each test asserts a measured quantity.

Gradient-through-time ratios compare the mean gradient norm over the farthest
quarter of distances with the nearest quarter (distance 0 excluded). Thresholds,
fixed before the measurements: vanishing < 1e-2, exploding > 1e2, attention
"does not fall" > 0.25.
"""

import json
import os

import jax
import numpy as onp
import pytest

from seqjax import diagnostics
from seqjax import models
from seqjax import tasks
from seqjax import train

TASK = tasks.build(tasks.task_config("copy_memory", delay=40, num_symbols=4))


def far_near_ratio(result):
  norms = onp.asarray(result["grad_norm"][1:])
  quarter = len(norms) // 4
  return norms[-quarter:].mean() / norms[:quarter].mean()


def measure(name, params_fn=None, **fields):
  model = models.build(models.model_config(name, **fields), TASK.io)
  batch = TASK.batch(jax.random.key(0), 8)
  params = model.init(jax.random.key(1), batch["inputs"])["params"]
  if params_fn is not None:
    params = params_fn(params)
  return model, params, batch, diagnostics.grad_through_time(model, params, batch)


def test_tanh_rnn_with_small_recurrent_weights_vanishes():
  _, _, _, result = measure("rnn", width=32, activation="tanh", rec_scale=0.5)
  assert far_near_ratio(result) < 1e-2
  assert result["future_grad_norm"] == 0.0


def test_relu_rnn_with_large_recurrent_weights_explodes():
  # ReLU passes about half the units, so a scaled orthogonal U has a per-step
  # gain of about rec_scale / sqrt(2): "large" means clearly above sqrt(2).
  _, _, _, result = measure("rnn", width=32, activation="relu", rec_scale=2.0)
  assert far_near_ratio(result) > 1e2


def test_causal_transformer_gradient_does_not_fall_with_distance():
  _, _, _, result = measure("transformer", width=32, num_heads=2)
  assert far_near_ratio(result) > 0.25
  assert result["future_grad_norm"] == 0.0  # causal: exactly zero after t


def test_lstm_gradient_is_causal_and_state_jacobian_falls():
  model, params, batch, result = measure("lstm", width=16)
  assert result["future_grad_norm"] == 0.0
  assert len(result["distance"]) == TASK.length
  jac = diagnostics.state_jacobian_norms(model, params, batch["inputs"][:2],
                                         [1, 8, 32])
  assert jac["distance"] == [1, 8, 32]
  assert jac["jacobian_norm"][0] > jac["jacobian_norm"][1] > jac["jacobian_norm"][2]


def test_spectral_radius_of_orthogonal_recurrent_blocks_is_one():
  _, params, _, _ = measure("lstm", width=16)
  radii = diagnostics.spectral_radii(params)
  assert len(radii) == 4  # one per gate block
  assert all(abs(r - 1.0) < 1e-5 for r in radii.values())
  doubled = jax.tree_util.tree_map(lambda x: 2 * x, params)
  assert all(abs(r - 2.0) < 1e-5 for r in diagnostics.spectral_radii(doubled).values())


def test_attention_maps_sum_to_one_and_are_zero_on_masked_keys():
  config = models.MODELS["transformer"](width=16, num_heads=2, num_layers=2)
  model = config.build(TASK.io)
  inputs = TASK.batch(jax.random.key(0), 2)["inputs"]
  params = model.init(jax.random.key(1), inputs)["params"]
  maps = diagnostics.attention_maps(config, TASK.io, params, inputs)
  assert len(maps) == 2
  for _, w in maps:
    assert w.shape == (2, 2, TASK.length, TASK.length)
    onp.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    future = onp.triu(onp.ones((TASK.length, TASK.length), bool), k=1)
    assert onp.all(onp.asarray(w)[..., future] == 0.0)
  # The captured model computes the same outputs as the plain one.
  plain = model.apply({"params": params}, inputs)
  captured = config.__class__(**{**config.__dict__, "capture_weights": True}).build(
      TASK.io).apply({"params": params}, inputs)
  onp.testing.assert_allclose(captured, plain, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_run_writes_grad_through_time_per_checkpoint(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config, workdir, progress=False)
  result = diagnostics.run(workdir, batch_size=4)
  stored = json.load(open(os.path.join(workdir, "diagnostics",
                                       "grad_through_time.json")))
  assert set(stored) == {"init", "4", "6"}  # keep_checkpoints=2, best among them
  assert stored == result["grad_through_time"]
  assert len(stored["init"]["distance"]) == len(stored["init"]["grad_norm"]) > 1
  assert stored["init"]["grad_norm"] != stored["6"]["grad_norm"]
  for name in ("grad_through_time.png", "state_jacobian.png",
               "spectral_radius.json"):
    assert os.path.exists(os.path.join(workdir, "diagnostics", name))
