"""launch.py as a user runs it: exact resume after SIGKILL, and bad input."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as onp
import pytest

from seqjax import configs
from seqjax import diagnostics
from seqjax import experiment
from seqjax import metric_log
from seqjax import report
from seqjax import run_files
from seqjax import train
from seqjax.errors import ConfigError

import helpers  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SWEEP = os.path.join(ROOT, "tests", "experiments", "tiny_sweep.py")
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


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory):
  """One uninterrupted launch of TINY, shared by the tests that only read it
  (the SIGKILL test compares to it, the eval test evaluates a copy of it)."""
  return helpers.launched(str(tmp_path_factory.mktemp("tiny") / "reference"), *TINY)


def _sigkill_then_relaunch_equals_uninterrupted(tmp_path, args, steps,
                                                reference=None):
  killed = str(tmp_path / "killed")
  if reference is None:
    reference = helpers.launched(str(tmp_path / "reference"), *args)

  proc = launch(*args, f"--workdir={killed}", wait=False)
  ckpt_dir = os.path.join(killed, "checkpoints")
  deadline = time.time() + 120
  while time.time() < deadline and not (
      os.path.isdir(ckpt_dir) and any(d.isdigit() for d in os.listdir(ckpt_dir))):
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  stored = run_files.read_json(os.path.join(killed, "summary.json"))
  assert stored is None or stored["status"] == "running", (
      "the run finished before it was killed; the test did not test resume")

  result = launch(*args, f"--workdir={killed}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert _records(killed) == _records(reference)
  a, b = experiment.load(killed, steps), experiment.load(reference, steps)
  assert all(onp.array_equal(x, y) for x, y in zip(
      jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)))
  summary = lambda d: json.load(open(os.path.join(d, "summary.json")))
  for key in ("final", "best", "test", "status"):
    assert summary(killed)[key] == summary(reference)[key]


@pytest.mark.slow  # launches
def test_sigkill_and_relaunch_equals_uninterrupted_run(tmp_path, tiny_reference):
  _sigkill_then_relaunch_equals_uninterrupted(tmp_path, TINY, 150,
                                              reference=tiny_reference)


@pytest.mark.slow  # launches
def test_sigkill_and_relaunch_of_a_file_dataset_task_is_exact(tmp_path):
  """The input pipeline of a dataset read from files (`text`) resumes exactly:
  its batches are a function of (seed, step), not of an iterator's state."""
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("".join(f"line {i}: the quick brown fox, {i * i}\n"
                            for i in range(400)))
  args = [f"--config=experiments/text.py:quick,path={corpus},length=32",
          "--config.train.steps=60", "--config.train.checkpoint_every=10",
          "--config.train.eval_every=30", "--config.train.log_every=5",
          "--config.train.eval_batches=1", "--config.model.width=16"]
  _sigkill_then_relaunch_equals_uninterrupted(tmp_path, args, 60)


@pytest.mark.slow  # a launch each
@pytest.mark.parametrize("args, message", [
    (["--config=experiments/copy_memory.py:model=nope"], "Unknown model.name 'nope'; valid: "),
    (["--config=experiments/copy_memory.py:quick,delai=3"], "Unknown config argument 'delai'"),
    (["--config=experiments/copy_memory.py:quick", "--config.train.stepz=3"],
     "--config.train.stepz names no config key"),
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
     "selective_copy, sequential_digits, text, text_to_image, vqvae_digits."),
    (["--config=experiments/missing.py"], "does not exist"),
    (["--config=experiments/copy_memory.py:quick", "--mode=bogus"],
     "flag --mode=bogus: value should be one of <train|eval|sweep|report|"),
    (["--config=experiments/copy_memory.py:quick", "--config.train.learning_rate=inf"],
     "train.learning_rate=inf is not a finite number"),
    (["--config=experiments/copy_memory.py:quick", "--config.model.dropout=nan"],
     "model.dropout=nan is not a finite number"),
    (["--config=experiments/copy_memory.py:quick", "--step=3"],
     "--step is not used by --mode=train; it serves --mode=eval"),
    (["--config=experiments/copy_memory.py:quick", "--jobs=2"],
     "--jobs is not used by --mode=train; it serves --mode=sweep"),
    (["--mode=eval", "--sweep_shard=0/2"],
     "--sweep_shard is not used by --mode=eval; it serves --mode=sweep"),
    (["--config=experiments/copy_memory.py:quick", "--eval_batches=3"],
     "--eval_batches is not used by --mode=train; it serves --mode=eval"),
    (["--config=experiments/copy_memory.py:quick", "--mode=report"],
     "--config is not used by --mode=report"),
])
def test_bad_input_is_one_paragraph_and_writes_nothing(tmp_path, args, message):
  workdir = str(tmp_path / "run")
  result = launch(*args, f"--workdir={workdir}")
  assert result.returncode == 2
  assert message in result.stderr, result.stderr
  assert "Traceback" not in result.stderr + result.stdout
  assert not os.path.exists(workdir)


@pytest.mark.slow  # a launch
def test_no_config_prints_usage_with_experiments_and_main_job():
  import launch as launch_module  # pylint: disable=import-outside-toplevel
  result = launch()
  assert result.returncode == 2
  assert "copy_memory.py" in result.stdout and launch_module.MAIN_JOB in result.stdout
  assert launch_module.MAIN_JOB in open(os.path.join(ROOT, "README.md")).read()


@pytest.mark.slow  # launches
@pytest.mark.parametrize("text, message", [
    ("def get_config(arg=None):\n  return {\n", r"bad.py, line 2: SyntaxError"),
    ("def get_config(arg=None):\n  x = {}\n  return x['model']\n",
     r"get_config\(None\) raised KeyError: 'model' \(at .*bad.py, line 3, in get_config\)"),
    ("import nonexistent_module_xyz\n",
     r"loading it raised ModuleNotFoundError.*bad.py, line 1"),
])
def test_a_config_file_that_does_not_run_is_one_paragraph(tmp_path, text, message):
  (tmp_path / "bad.py").write_text(text)
  for mode in ("train", "sweep"):
    result = launch(f"--config={tmp_path / 'bad.py'}", f"--mode={mode}",
                    f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.slow  # launches
def test_workdirs_that_cannot_be_used_are_refused_in_every_mode(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  sweep_file = launch(f"--config={TINY_SWEEP}", "--mode=sweep", f"--workdir={blocker}")
  assert sweep_file.returncode == 2, sweep_file.stderr
  assert "exists and is not a directory" in sweep_file.stderr
  long_name = str(tmp_path / ("x" * 300))
  for mode in ("train", "eval", "sweep", "report", "diagnose"):
    args = [f"--config={TINY_SWEEP}"] if mode in ("train", "sweep") else []
    result = launch(*args, f"--mode={mode}", f"--workdir={long_name}")
    assert result.returncode == 2, (mode, result.stderr)
    assert "the file system allows at most" in result.stderr, (mode, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # 11 launches
def test_eval_mode_on_a_damaged_checkpoint_is_one_short_paragraph_every_time(
    tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config, workdir, progress=False)
  for root, _, files in os.walk(os.path.join(workdir, "checkpoints", "6")):
    for name in files:
      if "ocdbt.process" in root:
        open(os.path.join(root, name), "w").close()
  # Orbax read the arrays concurrently and left the reads still pending after the
  # first failure to print tracebacks at exit, in 2 to 6 of 10 runs: 10 eval
  # launches, started together (they exit before compiling), and one diagnose.
  args = [["--mode=eval", "--step=6"]] * 10 + [["--mode=diagnose"]]
  procs = [launch(f"--workdir={workdir}", *a, wait=False) for a in args]
  for proc in procs:
    stdout, stderr = proc.communicate(timeout=300)
    text = helpers.refusal(subprocess.CompletedProcess(proc.args, proc.returncode,
                                                       stdout, stderr))
    assert re.fullmatch(
        r"error: Checkpoint \S+/checkpoints/6 cannot be read: its array \S+ in "
        r"default/ does not read \(.+\)\. Use another "
        r"\(4: --step\) or move this one out of checkpoints/ \(resumed "
        r"training sets it aside itself\)\.", text), text
    assert len(text.replace(workdir, "RUN")) < 320, text  # no TensorStore spec


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


@pytest.mark.slow  # launches
def test_eval_mode_restores_best_or_given_step(tmp_path, tiny_reference):
  workdir = str(tmp_path / "run")  # a copy: eval mode writes eval_<step>.json
  shutil.copytree(tiny_reference, workdir)
  result = launch(f"--workdir={workdir}", "--mode=eval", "--step=150")
  assert result.returncode == 0, result.stderr
  evaluated = json.loads(result.stdout)
  assert evaluated["step"] == 150
  final = json.load(open(os.path.join(workdir, "summary.json")))["final"]
  assert evaluated["eval"]["accuracy"] == pytest.approx(final["accuracy"])
  missing = launch(f"--workdir={workdir}", "--mode=eval", "--step=7")
  assert missing.returncode == 2 and "--step=7 has no checkpoint" in missing.stderr


@pytest.mark.slow  # launches
def test_diagnose_mode_writes_diagnostics_of_a_run_and_refuses_other_dirs(
    tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config, workdir, progress=False)
  # --mode=report reports a sweep: a run is refused (the ConfigError launch
  # prints as one paragraph with exit 2, as the empty directory's below).
  with pytest.raises(ConfigError, match="holds no sweep.*--mode=diagnose a single run's"):
    report.write(workdir)
  result = launch(f"--workdir={workdir}", "--mode=diagnose")
  assert result.returncode == 0, result.stderr[-2000:]
  grads = json.load(open(os.path.join(workdir, "diagnostics", "grad_through_time.json")))
  assert "init" in grads and "6" in grads  # initialisation and the last checkpoint
  assert all(len(g["grad_norm"]) == len(g["distance"]) > 0 for g in grads.values())
  assert os.path.exists(os.path.join(workdir, "diagnostics", "state_jacobian.json"))

  empty = tmp_path / "empty"
  empty.mkdir()
  refused = launch(f"--workdir={empty}", "--mode=diagnose")
  assert refused.returncode == 2
  assert "holds no run (no config.json)" in refused.stderr
  missing = str(tmp_path / "missing")
  with pytest.raises(ConfigError, match="holds no run \\(no config.json\\)"):
    diagnostics.run(missing)
  assert not os.listdir(empty) and not os.path.exists(missing)


def test_parse_arg_types_and_bare_keys():
  args = configs.parse_arg("model=gru,delay=7,quick", model="lstm", delay=int,
                           quick=False, lr=0.1)
  assert (args.model, args.delay, args.quick, args.lr) == ("gru", 7, True, 0.1)
  assert configs.parse_arg("", delay=int).delay is None
  with pytest.raises(ConfigError, match="delay='x' must be a int"):
    configs.parse_arg("delay=x", delay=int)


def test_config_check_writes_nothing(tiny_config, tmp_path):
  run_files.check(str(tmp_path / "a" / "b"), tiny_config)
  assert not os.path.exists(tmp_path / "a")
