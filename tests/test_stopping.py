"""Where a run stops: when it is solved (`train.stop_when_solved`, the same in a
group as alone), the profiler hook, and a checkpoint that no longer fits the
model (one paragraph, exit 2, nothing touched)."""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from seqjax import experiment
from seqjax import metric_log
from seqjax import tasks
from seqjax import train
from seqjax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEARNING_RATES = (1e-1, 3e-2, 1e-3)  # solves at step 10; 0.625 at best; never


def _solvable(tiny_config, learning_rate):
  """Copy memory of one symbol of two after a delay of 2: the first learning
  rate reaches validation accuracy 1.0 (the task's solved level) at step 10
  of 20 (on CPU, XLA of jax 0.10), the others never do."""
  config = tiny_config.copy_and_resolve_references()
  config.task.update(delay=2, num_symbols=1, alphabet=2)
  config.train.update(steps=20, eval_every=2, checkpoint_every=2, log_every=2,
                      warmup_steps=0, learning_rate=learning_rate,
                      stop_when_solved=True)
  return config


def _records(workdir):
  return [{k: v for k, v in r.items() if k != "steps_per_s"}
          for r in metric_log.read(os.path.join(workdir, "metrics.jsonl"))]


def _summary(workdir):
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)


@pytest.mark.slow  # trains a group and two solo runs
def test_a_solved_run_stops_in_a_group_as_it_does_alone(tiny_config, tmp_path):
  variants = [_solvable(tiny_config, lr) for lr in LEARNING_RATES]
  grouped = [str(tmp_path / f"g{i}") for i in range(3)]
  summaries = train.train_trials(variants, grouped)

  assert [s["status"] for s in summaries] == ["completed"] * 3
  stop = summaries[0]["step"]
  assert 0 < stop < 20 and [s["step"] for s in summaries[1:]] == [20, 20]
  assert summaries[0]["stopped"] == dict(step=stop, why="solved", metric="accuracy",
                                         value=1.0, level=1.0)
  assert "stopped" not in summaries[1] and "stopped" not in summaries[2]
  # Frozen where it was solved: its last evaluation, checkpoint and test are there.
  records = _records(grouped[0])
  assert max(r["step"] for r in records) == stop
  assert [r["step"] for r in records if r["split"] == "test"] == [stop]
  assert summaries[0]["final"]["step"] == stop
  assert experiment.load(grouped[0]).step == stop
  assert max(int(d) for d in os.listdir(os.path.join(grouped[0], "checkpoints"))
             if d.isdigit()) == stop

  for i, config in enumerate(variants[:2]):  # the solved one, and one that is not
    solo = str(tmp_path / f"s{i}")
    alone = train.train_and_evaluate(config, solo, progress=False)
    for key in ("status", "step", "stopped"):
      assert alone.get(key) == summaries[i].get(key), key
    a, b = _records(solo), _records(grouped[i])
    assert [(r["step"], r["split"]) for r in a] == [(r["step"], r["split"]) for r in b]
    for x, y in zip(a, b):
      assert x == pytest.approx(y, rel=1e-5, abs=1e-6), (x, y)

  # Resuming a group whose run was solved does nothing to that run.
  before = {p: open(p, "rb").read() for p in glob.glob(f"{grouped[0]}/**",
                                                       recursive=True)
            if os.path.isfile(p)}
  again = train.train_and_evaluate(variants[0], grouped[0], progress=False)
  assert again == summaries[0]
  for path, data in before.items():
    assert open(path, "rb").read() == data, path


def test_stop_when_solved_needs_a_level(tiny_config, tmp_path):
  text = tmp_path / "corpus.txt"
  text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
  config = tiny_config.copy_and_resolve_references()
  config.task = tasks.task_config("text", path=str(text), length=8)
  config.train.stop_when_solved = True
  with pytest.raises(ConfigError, match="task 'text' has no solved_level for its "
                     "metric 'bits_per_byte'; set train.solved_level"):
    train.train_and_evaluate(config, str(tmp_path / "run"), progress=False)
  assert not os.path.exists(tmp_path / "run")
  config.train.solved_level = 3.0  # a level given in the config is enough
  experiment.build(config)


def test_profile_steps_writes_a_trace(tiny_config, tmp_path):
  tiny_config.train.profile_steps = 2
  workdir = str(tmp_path / "run")
  assert train.train_and_evaluate(tiny_config, workdir,
                                  progress=False)["status"] == "completed"
  traces = glob.glob(os.path.join(workdir, "profile", "**", "*.xplane.pb"),
                     recursive=True)
  assert traces and os.path.getsize(traces[0]) > 0


@pytest.mark.slow  # a launch
def test_a_checkpoint_that_no_longer_fits_the_model_is_one_paragraph(
    tiny_config, tmp_path):
  """The model's state changed under a run's checkpoints (its config.json
  gone, the width changed): exit 2 with one paragraph naming the leaves, no
  traceback, and the run's files as they were."""
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config, workdir, progress=False)
  os.remove(os.path.join(workdir, "config.json"))
  os.remove(os.path.join(workdir, "summary.json"))  # as if killed: it resumes
  before = {p: open(p, "rb").read()
            for p in glob.glob(f"{workdir}/**", recursive=True) if os.path.isfile(p)}
  tiny_config.model.width = 16
  with pytest.raises(ConfigError, match="checkpoints/6 does not match"):
    train.train_and_evaluate(tiny_config, workdir, progress=False)

  config_file = tmp_path / "experiment.py"
  config_file.write_text(
      "import ml_collections\n"
      f"def get_config(arg=None):\n  return ml_collections.ConfigDict({tiny_config.to_dict()!r})\n")
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"), f"--config={config_file}",
       f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True,
      timeout=300, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert "error: Checkpoint" in result.stderr and "does not match" in result.stderr
  after = {p: open(p, "rb").read()
           for p in glob.glob(f"{workdir}/**", recursive=True) if os.path.isfile(p)}
  assert after == before


def test_every_task_declares_its_solved_level():
  """1.0 (no error on the validation batches) for every task scored by an
  accuracy; adding's stated MSE; None where the metric has no natural level."""
  levels = {name: (cls.mode, cls.solved_level) for name, cls in tasks.TASKS.items()}
  for name, (mode, level) in levels.items():
    if mode == "max":
      assert level == 1.0, name
  assert levels["adding"] == ("min", 0.01)
  assert levels["text"][1] is None and levels["text_to_image"][1] is None


def test_best_is_never_the_step_0_evaluation_when_a_later_one_ties():
  task = tasks.build(tasks.task_config("copy_memory", delay=2))  # accuracy, max
  evals = [dict(step=s, split="eval", accuracy=a, loss=1.0)
           for s, a in ((0, 0.5), (2, 0.25), (4, 0.5), (6, float("nan")))]
  result = train.final_and_best(evals + [dict(step=6, split="test", accuracy=0.9)],
                                task)
  assert result["best"]["step"] == 4 and result["final"]["step"] == 6
