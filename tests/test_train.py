"""The walking skeleton: a run end to end, restore, exact resume, golden step."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from seqjax import experiment
from seqjax import metric_log
from seqjax import stepping
from seqjax import train


def _leaves_equal(a, b):
  return all(onp.array_equal(x, y) for x, y in zip(
      jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def _records(workdir):
  """metrics.jsonl without the wall-clock fields."""
  return [{k: v for k, v in r.items() if k != "steps_per_s"}
          for r in metric_log.read(os.path.join(workdir, "metrics.jsonl"))]


def checkpoints_of(workdir):
  return sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints"))
                if d.isdigit())


def test_end_to_end_run_writes_files_and_restores(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  summary = train.train_and_evaluate(tiny_config, workdir, progress=False)

  assert summary["status"] == "completed" and summary["step"] == 6
  assert summary["metric"] == "accuracy" and summary["chance"] == 0.25
  stored = json.load(open(os.path.join(workdir, "summary.json")))
  assert stored["final"] == summary["final"] and stored["num_params"] > 0
  for key in ("best", "test", "wall_time_s", "peak_memory_mb"):
    assert key in stored
  assert stored["step_temp_mb"] > 0  # XLA's memory analysis of the compiled step
  assert json.load(open(os.path.join(workdir, "config.json"))) == json.loads(
      tiny_config.to_json())
  records = _records(workdir)
  assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
  # Learning curves start at the initialisation: an evaluation at step 0.
  assert [r["step"] for r in records if r["split"] == "eval"] == [0, 2, 4, 6]
  for name in ("loss", "accuracy", "grad_norm", "param_norm", "update_norm",
               "learning_rate"):
    assert onp.isfinite(records[1][name]), name  # the first train record
  assert os.listdir(os.path.join(workdir, "tb"))

  # Restoring a checkpoint gives back the parameters that produced its metrics.
  restored = experiment.load(workdir, step=6)
  exp = experiment.build(restored.config)
  assert _leaves_equal(
      jax.tree_util.tree_map(jnp.shape, restored.params),
      jax.tree_util.tree_map(jnp.shape, experiment.init_state(exp).params))
  again = stepping.evaluate_split(exp, restored.params, "eval")[0]
  assert again == pytest.approx(
      {k: v for k, v in summary["final"].items() if k != "step"}, rel=1e-6)
  at_init = stepping.evaluate_split(exp, experiment.init_state(exp).params,
                                    "eval")[0]
  assert at_init == pytest.approx(
      {k: v for k, v in records[0].items() if k not in ("step", "split")}, rel=1e-6)
  assert records[0]["split"] == "eval"
  assert 0 not in checkpoints_of(workdir)  # step 0 is evaluated, not saved

  # --mode=eval restores the best checkpoint and writes eval_<step>.json.
  result = train.evaluate_checkpoint(workdir)
  best_step = summary["best"]["step"]
  assert result["step"] == best_step
  assert os.path.exists(os.path.join(workdir, f"eval_{best_step}.json"))


def test_checkpoints_keep_last_k_plus_best(tiny_config, tmp_path):
  tiny_config.train.update(steps=10, keep_checkpoints=1)
  workdir = str(tmp_path / "run")
  summary = train.train_and_evaluate(tiny_config, workdir, progress=False)
  assert checkpoints_of(workdir) == sorted({10, summary["best"]["step"]})


def test_golden_first_training_step(tiny_config):
  """One training step of the tiny config, seed 0, on CPU.

  If this changes, the numerics of a run changed: initialisation, data
  generation, loss or optimizer. Make sure that was intended, then update it.
  """
  exp = experiment.build(tiny_config)
  state = experiment.init_state(exp)
  batch_fn, train_step = stepping.make_batch_fn(exp, experiment.TRAIN), stepping.make_train_step(exp)
  assert batch_fn(0)["inputs"][0].tolist() == [2, 4, 0, 0, 0, 5, 0, 0]
  state, first = train_step(state, batch_fn(0))   # learning rate 0 (warmup)
  state, second = train_step(state, batch_fn(1))  # learning rate 1e-2
  assert float(first["loss"]) == pytest.approx(1.7380846738815308, rel=1e-5)
  assert float(second["loss"]) == pytest.approx(1.6829774379730225, rel=1e-5)
  assert float(second["grad_norm"]) == pytest.approx(0.7803741693496704, rel=1e-5)
  assert float(second["update_norm"]) == pytest.approx(0.2083471715450287, rel=1e-5)


def test_corrupt_checkpoint_is_set_aside_and_previous_used(tiny_config, tmp_path):
  reference = str(tmp_path / "reference")
  train.train_and_evaluate(tiny_config, reference, progress=False)

  # The same run, finished: a copy of the reference (training it again would
  # write the same checkpoints and log).
  workdir = str(tmp_path / "run")
  shutil.copytree(reference, workdir)
  latest = os.path.join(workdir, "checkpoints", "6")
  for root, _, files in os.walk(latest):  # corrupt every data file of step 6
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  # As if killed after its last checkpoint: a finished run is never retrained.
  os.remove(os.path.join(workdir, "summary.json"))
  summary = train.train_and_evaluate(tiny_config, workdir, progress=False)

  assert summary["status"] == "completed"
  assert os.path.isdir(os.path.join(workdir, "corrupt_checkpoints", "6"))
  assert _leaves_equal(experiment.load(workdir, 6).params,
                       experiment.load(reference, 6).params)
  assert _records(workdir) == _records(reference)


def test_non_finite_loss_is_recorded_as_diverged(tiny_config, tmp_path):
  tiny_config.train.update(learning_rate=1e38, grad_clip=0.0, warmup_steps=0,
                           schedule="constant")
  workdir = str(tmp_path / "run")
  summary = train.train_and_evaluate(tiny_config, workdir, progress=False)
  assert summary["status"] == "diverged"
  assert 1 <= summary["diverged_at"] <= 6
  assert json.load(open(os.path.join(workdir, "summary.json")))["status"] == "diverged"


def test_load_restores_the_best_checkpoint_by_the_validation_metric(
    tiny_config, tmp_path):
  tiny_config.train.update(steps=10, keep_checkpoints=5)
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config, workdir, progress=False)
  path = os.path.join(workdir, "metrics.jsonl")
  records = metric_log.read(path)
  for r in records:  # step 4 the best on validation, every other eval worse
    if r["split"] == "eval":
      r["accuracy"] = 1.0 if r["step"] == 4 else 0.0
  with open(path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
  assert experiment.load(workdir).step == 4
  assert train.evaluate_checkpoint(workdir)["step"] == 4
