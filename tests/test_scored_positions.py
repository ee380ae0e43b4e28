"""Tasks that score a few positions per row compute logits and loss there only:
the loss, its gradient and the metrics equal those of the full outputs."""

import jax
import numpy as onp
import pytest

from seqjax import models
from seqjax import stepping
from seqjax import tasks
from seqjax.tasks import base

pytestmark = pytest.mark.slow  # compiles the full and scored-position gradients per task

TASKS = {
    "associative_recall": dict(length=24, num_pairs=3, vocab=32),
    "induction_heads": dict(length=12, vocab=8),
    "selective_copy": dict(length=12, num_tokens=3, vocab=6),
    "copy_memory": dict(delay=4, num_symbols=2, alphabet=4, score="recall"),
}


# Every task with an LSTM; the transformer (the same SequenceModel head) on one.
@pytest.mark.parametrize("task_name, model_name",
                         [(name, "lstm") for name in sorted(TASKS)] +
                         [("associative_recall", "transformer")])
def test_outputs_at_scored_positions_give_the_full_loss_gradient_and_metrics(
    task_name, model_name):
  task = tasks.build(tasks.task_config(task_name, **TASKS[task_name]))
  settings = dict(width=8, num_layers=1) | (
      dict(num_heads=2) if model_name == "transformer" else {})
  model = models.build(models.model_config(model_name, **settings), task.io)
  batch = task.batch(jax.random.key(0), 4)
  assert "positions" in batch
  # Every scored position is among `positions`.
  covered = onp.zeros(batch["mask"].shape, bool)
  onp.put_along_axis(covered, onp.asarray(batch["positions"]), True, axis=1)
  assert not onp.any((onp.asarray(batch["mask"]) > 0) & ~covered)
  full = {k: v for k, v in batch.items() if k != "positions"}
  params = model.init(jax.random.key(1), batch["inputs"])["params"]

  def loss(params, batch):
    at, target = stepping.scoring(batch)
    outputs = model.apply({"params": params}, batch["inputs"], **at)
    return base.loss_fn(task.loss, outputs, target), task.metrics(outputs, target)

  (l_at, m_at), g_at = jax.value_and_grad(loss, has_aux=True)(params, batch)
  (l_full, m_full), g_full = jax.value_and_grad(loss, has_aux=True)(params, full)
  assert float(l_at) == pytest.approx(float(l_full), rel=1e-6)
  assert {k: float(v) for k, v in m_at.items()} == pytest.approx(
      {k: float(v) for k, v in m_full.items()}, rel=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(g_at), jax.tree_util.tree_leaves(g_full)):
    onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  logits_full = model.apply({"params": params}, batch["inputs"])
  logits_at = model.apply({"params": params}, batch["inputs"],
                          positions=batch["positions"])
  onp.testing.assert_allclose(
      logits_at, onp.take_along_axis(onp.asarray(logits_full),
                                     onp.asarray(batch["positions"])[..., None], 1),
      rtol=1e-5, atol=1e-6)
