"""The gradients reproduction's measures: the fitted rate, the far/near ratio,
and a gradient norm that stays finite where the gradient explodes."""

import math

import jax
import numpy as onp
import pytest

from seqjax import diagnostics
from seqjax import models
from seqjax import tasks
from seqjax import vanishing


def test_fit_rate_recovers_an_exact_exponential_and_drops_zeros():
  k = list(range(30))
  norms = [3.0 * 0.9 ** d for d in k]
  fit = vanishing.fit_rate(k, norms)
  assert fit["factor"] == pytest.approx(0.9, rel=1e-9)
  assert fit["r2"] == pytest.approx(1.0, rel=1e-9)
  assert (fit["points"], fit["dropped"]) == (29, 0)   # k = 0 left out
  norms[10], norms[20] = 0.0, math.inf                # underflow, overflow
  fit = vanishing.fit_rate(k, norms)
  assert fit["factor"] == pytest.approx(0.9, rel=1e-9) and fit["dropped"] == 2
  with pytest.raises(ValueError, match="no rate to fit"):
    vanishing.fit_rate([0, 1, 2], [1.0, 0.0, math.nan])


def test_far_near_ratio_leaves_out_the_direct_path():
  # distances 0..8: k = 0 is 100 (ignored); nearest quarter k = 1, 2; farthest k = 7, 8.
  norms = [100.0, 4.0, 4.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0]
  assert vanishing.far_near_ratio(norms) == pytest.approx(0.5, rel=1e-12)


def test_exploding_gradient_norm_is_finite_where_its_square_is_not():
  """A ReLU RNN at rec_scale 3.5 grows about 2.5x per step: 80 steps back the
  gradient's entries are finite in float32, the sum of their squares is not
  (above 3.4e38), so a plain norm would read inf."""
  task = tasks.build(tasks.task_config("copy_memory", delay=60, num_symbols=4))
  model = models.build(models.model_config("rnn", width=16, activation="relu",
                                           rec_scale=3.5), task.io)
  batch = task.batch(jax.random.key(0), 2)
  params = model.init(jax.random.key(1), batch["inputs"])["params"]
  norms, _ = diagnostics.input_gradients(model, params, batch)
  norms = onp.asarray(norms, onp.float64)
  assert onp.isfinite(norms).all() and norms.max() > 1e20
