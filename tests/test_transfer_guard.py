"""The training loop moves nothing between host and device but on purpose: its
steps run under `jax.transfer_guard("disallow")` (as big_vision's every run);
metrics come back by an explicit `jax.device_get`, and evaluating, checkpointing
and writing the summaries are the fetches it allows."""

import jax
import numpy as onp

from seqjax import train


def _spy_on_steps(monkeypatch):
  """Records, at every train step, whether an implicit transfer is refused."""
  refused = []
  step = train._Group.step  # pylint: disable=protected-access

  def spying(self, batch, i):
    try:
      jax.numpy.asarray(onp.ones(1, onp.float32)) + 0  # an implicit transfer
      refused.append(False)
    except Exception:  # pylint: disable=broad-except
      refused.append(True)
    return step(self, batch, i)

  monkeypatch.setattr(train._Group, "step", spying)  # pylint: disable=protected-access
  return refused


def test_train_loop_runs_under_the_transfer_guard(tiny_config, tmp_path,
                                                   monkeypatch):
  refused = _spy_on_steps(monkeypatch)
  summary = train.train_and_evaluate(tiny_config, str(tmp_path / "run"),
                                     progress=False)
  assert summary["status"] == "completed"
  assert len(refused) == tiny_config.train.steps and all(refused)


def test_group_loop_runs_under_the_transfer_guard(tiny_config, tmp_path,
                                                  monkeypatch):
  refused = _spy_on_steps(monkeypatch)
  other = tiny_config.copy_and_resolve_references()
  other.train.learning_rate = 3e-3
  summaries = train.train_trials([tiny_config, other],
                                 [str(tmp_path / "a"), str(tmp_path / "b")])
  assert [s["status"] for s in summaries] == ["completed", "completed"]
  assert len(refused) == tiny_config.train.steps and all(refused)
