"""launch.py as a user runs it: exact resume after SIGKILL, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as onp
import pytest

from seqjax import checkpoints
from seqjax import configs
from seqjax import metric_log
from seqjax import train
from seqjax import workdir as workdir_lib
from seqjax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config=experiments/copy_memory.py:quick,delay=4",
        "--config.model.width=16", "--config.train.steps=150",
        "--config.train.checkpoint_every=10", "--config.train.eval_every=30",
        "--config.train.log_every=5", "--config.train.eval_batches=1"]


def launch(*args, wait=True):
  cmd = [sys.executable, os.path.join(ROOT, "launch.py"), *args]
  kwargs = dict(cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  if not wait:
    return subprocess.Popen(cmd, **kwargs)
  return subprocess.run(cmd, timeout=300, check=False, **kwargs)


def _records(workdir):
  return [{k: v for k, v in r.items() if k != "steps_per_s"}
          for r in metric_log.read(os.path.join(workdir, "metrics.jsonl"))]


def test_sigkill_and_relaunch_equals_uninterrupted_run(tmp_path):
  reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
  assert launch(*TINY, f"--workdir={reference}").returncode == 0

  proc = launch(*TINY, f"--workdir={killed}", wait=False)
  ckpt_dir = os.path.join(killed, "checkpoints")
  deadline = time.time() + 120
  while time.time() < deadline and not (
      os.path.isdir(ckpt_dir) and any(d.isdigit() for d in os.listdir(ckpt_dir))):
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not os.path.exists(os.path.join(killed, "summary.json")), (
      "the run finished before it was killed; the test did not test resume")

  result = launch(*TINY, f"--workdir={killed}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert _records(killed) == _records(reference)
  a, b = checkpoints.load(killed, 150), checkpoints.load(reference, 150)
  assert all(onp.array_equal(x, y) for x, y in zip(
      jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)))
  summary = lambda d: json.load(open(os.path.join(d, "summary.json")))
  for key in ("final", "best", "test", "status"):
    assert summary(killed)[key] == summary(reference)[key]


@pytest.mark.parametrize("args, message", [
    (["--config=experiments/copy_memory.py:model=nope"], "Unknown model.name 'nope'; valid: "),
    (["--config=experiments/copy_memory.py:quick,delai=3"], "Unknown config argument 'delai'"),
    (["--config=experiments/copy_memory.py:quick", "--config.train.stepz=3"],
     "unknown config key 'train.stepz'"),
    (["--config=experiments/copy_memory.py:quick", "--config.model.widht=3"],
     "keys allowed under config.model: bidirectional, dropout"),
    (["--config=experiments/copy_memory.py:quick", "--config.train.steps=0"],
     "train.steps must be positive, got 0"),
    (["--config=experiments/copy_memory.py:quick", "--config.model.width=-4"],
     "model.width must be positive, got -4"),
    (["--config=experiments/copy_memory.py:quick", "--config.task.delay=0"],
     "task.delay must be positive, got 0"),
    (["--config=experiments/copy_memory.py:quick", "--config.train.schedule=linear"],
     "train.schedule='linear' is not allowed; choose one of cosine, constant"),
    (["--config=experiments/copy_memory.py:quick", "--config.task.name=nope"],
     "Unknown task.name 'nope'; valid: aan, adding, associative_recall, cifar10, "
     "copy_memory, flip_flop, imdb, induction_heads, listops, pathfinder, reverse, "
     "selective_copy, sequential_digits, text."),
    (["--config=experiments/missing.py"], "does not exist"),
    (["--config=experiments/copy_memory.py:quick", "--mode=bogus"],
     "--mode='bogus' is not allowed"),
])
def test_bad_input_is_one_paragraph_and_writes_nothing(tmp_path, args, message):
  workdir = str(tmp_path / "run")
  result = launch(*args, f"--workdir={workdir}")
  assert result.returncode == 2
  assert message in result.stderr, result.stderr
  assert "Traceback" not in result.stderr + result.stdout
  assert not os.path.exists(workdir)


def test_no_config_prints_usage_with_experiments_and_main_job():
  result = launch()
  assert result.returncode == 2
  assert "copy_memory.py" in result.stdout and "launch.py --config=" in result.stdout


def test_workdir_under_a_file_is_refused(tiny_config, tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(ConfigError, match="not a directory"):
    train.train_and_evaluate(tiny_config, str(blocker / "run"), progress=False)


def test_workdir_of_another_config_is_refused_and_left_intact(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config, workdir, progress=False)
  before = {name: open(os.path.join(workdir, name)).read()
            for name in ("config.json", "metrics.jsonl", "summary.json")}
  tiny_config.train.learning_rate = 0.5
  with pytest.raises(ConfigError, match=r"train.learning_rate \(0.01 -> 0.5\)"):
    train.train_and_evaluate(tiny_config, workdir, progress=False)
  for name, text in before.items():
    assert open(os.path.join(workdir, name)).read() == text


def test_eval_mode_restores_best_or_given_step(tmp_path):
  workdir = str(tmp_path / "run")
  assert launch(*TINY, f"--workdir={workdir}").returncode == 0
  result = launch(f"--workdir={workdir}", "--mode=eval", "--step=150")
  assert result.returncode == 0, result.stderr
  evaluated = json.loads(result.stdout)
  assert evaluated["step"] == 150
  final = json.load(open(os.path.join(workdir, "summary.json")))["final"]
  assert evaluated["eval"]["accuracy"] == pytest.approx(final["accuracy"])
  missing = launch(f"--workdir={workdir}", "--mode=eval", "--step=7")
  assert missing.returncode == 2 and "--step=7 has no checkpoint" in missing.stderr


def test_report_mode_writes_diagnostics_of_a_run_and_refuses_other_dirs(
    tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config, workdir, progress=False)
  result = launch(f"--workdir={workdir}", "--mode=report")
  assert result.returncode == 0, result.stderr[-2000:]
  grads = json.load(open(os.path.join(workdir, "diagnostics", "grad_through_time.json")))
  assert "init" in grads and "6" in grads  # initialisation and the last checkpoint
  assert all(len(g["grad_norm"]) == len(g["distance"]) > 0 for g in grads.values())
  assert os.path.exists(os.path.join(workdir, "diagnostics", "state_jacobian.json"))

  empty = tmp_path / "empty"
  empty.mkdir()
  for target in (str(empty), str(tmp_path / "missing")):
    refused = launch(f"--workdir={target}", "--mode=report")
    assert refused.returncode == 2
    assert "holds neither a run (config.json) nor a sweep" in refused.stderr
  assert not os.listdir(empty) and not os.path.exists(tmp_path / "missing")


def test_parse_arg_types_and_bare_keys():
  args = configs.parse_arg("model=gru,delay=7,quick", model="lstm", delay=int,
                           quick=False, lr=0.1)
  assert (args.model, args.delay, args.quick, args.lr) == ("gru", 7, True, 0.1)
  assert configs.parse_arg("", delay=int).delay is None
  with pytest.raises(ConfigError, match="delay='x' must be a int"):
    configs.parse_arg("delay=x", delay=int)


def test_config_check_writes_nothing(tiny_config, tmp_path):
  workdir_lib.check(str(tmp_path / "a" / "b"), tiny_config)
  assert not os.path.exists(tmp_path / "a")
