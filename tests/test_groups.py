"""Trial groups: many runs in one vmapped program, each still a run of its own;
and the run lifecycle (finished, interrupted, held, too big)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as onp
import pytest

from seqjax import configs
from seqjax import experiment
from seqjax import metric_log
from seqjax import models
from seqjax import report
from seqjax import run_lock
from seqjax import stepping
from seqjax import sweep
from seqjax import train
from seqjax.errors import ConfigError

import helpers  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "tests", "experiments", "tiny_sweep.py")
WALL_CLOCK = ("steps_per_s", "wall_time_s", "train_time_s", "peak_memory_mb")


def _variant(config, **train_values):
  config = config.copy_and_resolve_references()
  config.train.update(**train_values)
  return config


def _records(workdir):
  return [{k: v for k, v in r.items() if k != "steps_per_s"}
          for r in metric_log.read(os.path.join(workdir, "metrics.jsonl"))]


def _assert_logs_agree(a, b, rtol):
  ra, rb = _records(a), _records(b)
  assert [(r["step"], r["split"]) for r in ra] == [(r["step"], r["split"]) for r in rb]
  for x, y in zip(ra, rb):
    for key in x:
      assert x[key] == pytest.approx(y[key], rel=rtol, abs=1e-6, nan_ok=True), (
          key, x, y)


def _assert_runs_agree(a, b, rtol, learning_rate, steps=6):
  """Two runs' logs agree to `rtol`, and their final parameters to rounding.

  Adam's update of a parameter whose gradient is near zero is dominated by
  rounding (m / sqrt(v) of noise), so such a parameter may move anywhere within
  the learning rate per step: elementwise, parameters agree to 2 lr per step,
  and on average to 1e-5.
  """
  _assert_logs_agree(a, b, rtol)
  pa, pb = experiment.load(a, steps).params, experiment.load(b, steps).params
  diffs = [onp.abs(x - y) for x, y in zip(jax.tree_util.tree_leaves(pa),
                                          jax.tree_util.tree_leaves(pb))]
  assert max(float(d.max()) for d in diffs) <= 2 * learning_rate * steps
  assert float(onp.mean(onp.concatenate([d.ravel() for d in diffs]))) < 1e-5


# The LSTM's trials are each compared with their solo runs; the transformer's
# (the same group step and hyperparameters, another model under vmap) only the
# one with every hyperparameter changed.
@pytest.mark.slow  # trains 3 grouped and up to 3 solo runs per model
@pytest.mark.parametrize("model, solo_runs", [("lstm", (0, 1, 2)),
                                              ("transformer", (1,))])
def test_a_grouped_run_equals_its_solo_run(tiny_config, tmp_path, model, solo_runs):
  if model == "transformer":
    tiny_config.model = models.model_config("transformer", width=8, num_layers=1,
                                            num_heads=2)
  variants = [_variant(tiny_config, seed=0, learning_rate=1e-2),
              _variant(tiny_config, seed=1, learning_rate=3e-3, warmup_steps=2,
                       weight_decay=0.1, grad_clip=0.5),
              _variant(tiny_config, seed=2, learning_rate=1e38)]  # diverges
  grouped = train.train_trials(variants, [str(tmp_path / f"g{i}") for i in range(3)])
  assert [s["status"] for s in grouped] == ["completed", "completed", "diverged"]
  assert all(s["group_size"] == 3 for s in grouped)
  for i in solo_runs:
    config = variants[i]
    solo = train.train_and_evaluate(config, str(tmp_path / f"s{i}"), progress=False)
    assert solo["status"] == grouped[i]["status"]
    assert solo["step"] == grouped[i]["step"]
    if solo["status"] == "diverged":
      assert solo["diverged_at"] == grouped[i]["diverged_at"]
      _assert_logs_agree(str(tmp_path / f"g{i}"), str(tmp_path / f"s{i}"), 1e-5)
      continue
    # Adam divides by the root of tiny second moments early on, which amplifies
    # float32 rounding (vmapped matmuls sum in another order) over six steps.
    _assert_runs_agree(str(tmp_path / f"g{i}"), str(tmp_path / f"s{i}"), rtol=1e-4,
                       learning_rate=config.train.learning_rate)
    # Each trial stays a run: --mode=eval works on it unchanged.
    assert train.evaluate_checkpoint(str(tmp_path / f"g{i}"))["step"] > 0


@pytest.mark.slow  # trains a group and two solo runs three steps
def test_the_first_steps_of_a_group_equal_solo_steps_to_rounding(tiny_config):
  variants = [_variant(tiny_config, seed=s, learning_rate=lr)
              for s, lr in ((0, 1e-2), (3, 3e-3))]
  exps = [experiment.build(c) for c in variants]
  group_step = stepping.make_group_step(exps[0])
  init = jax.jit(experiment.init_fn(exps[0]))  # pylint: disable=protected-access
  state = jax.tree_util.tree_map(lambda *x: onp.stack(x),
                                 *[init(e.key(experiment.INIT)) for e in exps])
  hp = {k: onp.asarray([experiment.hyperparameters(e.train)[k] for e in exps],
                       onp.float32) for k in experiment.HYPER_KEYS}
  keys = stepping.stream_keys([0, 3], experiment.DROPOUT)
  batches = stepping.make_group_batch_fn(exps[0], [0, 3], experiment.TRAIN)
  alive = started = onp.ones(2, bool)
  for n, exp in enumerate(exps):
    solo_state = experiment.init_state(exp)
    assert all(onp.array_equal(x, y[n]) for x, y in zip(
        jax.tree_util.tree_leaves(solo_state), jax.tree_util.tree_leaves(state)))
  solo = [(experiment.init_state(e), stepping.make_train_step(e),
           stepping.make_batch_fn(e, experiment.TRAIN)) for e in exps]
  for i in range(3):
    state, alive, metrics = group_step(state, alive, batches(i), hp, keys, started)
    for n, (s, step, batch_fn) in enumerate(solo):
      assert onp.array_equal(batch_fn(i)["inputs"], batches(i)["inputs"][n])
      s, m = step(s, batch_fn(i))
      solo[n] = (s, step, batch_fn)
      for key in m:
        assert float(metrics[key][n]) == pytest.approx(float(m[key]), rel=1e-5)


def _trials(grid):
  module = configs.load_module(TINY)
  return [sweep.Trial(sweep.trial_name(o), o, sweep.trial_config(module, None, o), 4)
          for o in grid]


def test_grouping_rules():
  groupable = sweep.product(sweep.values("train.learning_rate", [0.01, 0.001]),
                            sweep.values("train.seed", [0, 1]),
                            sweep.values("train.weight_decay", [0.0, 0.1]),
                            sweep.values("train.warmup_steps", [1, 2]),
                            sweep.values("train.grad_clip", [0.5, 1.0]))
  trials = _trials(groupable)
  groups = sweep.make_groups(trials, size=100)
  assert len(groups) == 1 and len(groups[0]) == 32
  assert [len(g) for g in sweep.make_groups(trials, size=12)] == [12, 12, 8]
  splitting = [{"arg.model": "gru"}, {"arg.delay": 2}, {"train.steps": 7},
               {"train.batch_size": 2}, {"train.grad_clip": 0.0},
               {"train.schedule": "constant"}]
  trials = _trials([{}] + splitting)
  assert len(sweep.make_groups(trials, size=100)) == 7
  with pytest.raises(ConfigError, match="--group_size.group_size must be positive"):
    sweep.make_groups(trials, size=0)


def _launch(*args, **kwargs):
  return subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), *args],
                        cwd=ROOT, capture_output=True, text=True, timeout=300,
                        **kwargs)


def _summary(workdir):
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)


def _wait_for_checkpoint(trial_dir, at_least, deadline_s=200):
  ckpt = os.path.join(trial_dir, "checkpoints")
  deadline = time.time() + deadline_s
  while time.time() < deadline and not (
      os.path.isdir(ckpt) and any(d.isdigit() and int(d) >= at_least
                                  for d in os.listdir(ckpt))):
    time.sleep(0.01)


def _wait_until_gone(pid, deadline_s=120):
  deadline = time.time() + deadline_s
  while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
    time.sleep(0.01)
  assert not os.path.exists(f"/proc/{pid}"), f"process {pid} still runs"


@pytest.mark.slow  # four sweep launches
def test_a_killed_runner_stops_its_group_and_sigkill_then_rerun_is_exact(tmp_path):
  args = [f"--config={TINY}:grid=seeds", "--mode=sweep", "--jobs=1"]
  reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
  assert _launch(*args, f"--workdir={reference}").returncode == 0
  names = [r["trial"] for r in report.results(reference)]
  first = os.path.join(killed, names[0])

  def start():
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "launch.py"), *args,
         f"--workdir={killed}"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)

  # The runner dies: its group gets SIGTERM and stops as interrupted.
  runner = start()
  _wait_for_checkpoint(first, 40)
  group = run_lock.holder(first)["pid"]  # the lock names the process that trains
  runner.kill()
  runner.wait()
  _wait_until_gone(group)
  assert _summary(first)["status"] == "interrupted", (
      "the group finished before its runner was killed; the test did not test it")
  # The runner and its group are killed at once, mid-training.
  runner = start()
  _wait_for_checkpoint(first, _summary(first)["step"] + 40)
  group = run_lock.holder(first)["pid"]
  os.kill(group, signal.SIGKILL)
  runner.kill()
  runner.wait()
  _wait_until_gone(group)
  assert _summary(first)["status"] == "running", (
      "the group finished before it was killed; the test did not test resume")

  result = _launch(*args, f"--workdir={killed}")
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  assert sorted(r["trial"] for r in report.results(killed)) == sorted(names)
  for name in names:
    a, b = os.path.join(killed, name), os.path.join(reference, name)
    assert _records(a) == _records(b), name
    for key in ("status", "step", "final", "best", "test", "group_size"):
      assert _summary(a)[key] == _summary(b)[key], (name, key)


def test_a_finished_run_relaunched_is_left_as_it_is(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  first = train.train_and_evaluate(tiny_config, workdir, progress=False)
  files = {}
  for root, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(root, name)
      files[path] = (os.path.getmtime(path), open(path, "rb").read())
  again = train.train_and_evaluate(tiny_config, workdir, progress=False)
  assert again == json.loads(json.dumps(first))
  for path, (mtime, data) in files.items():
    assert os.path.getmtime(path) == mtime and open(path, "rb").read() == data, path


TINY_RUN = ["--config=experiments/copy_memory.py:quick,delay=4",
            "--config.model.width=16", "--config.train.steps=300",
            "--config.train.checkpoint_every=100", "--config.train.eval_every=100",
            "--config.train.log_every=10", "--config.train.eval_batches=1"]


@pytest.fixture(scope="module")
def tiny_run_reference(tmp_path_factory):
  """One uninterrupted launch of TINY_RUN: both signals' runs compare to it."""
  return helpers.launched(str(tmp_path_factory.mktemp("tiny_run") / "reference"),
                         *TINY_RUN)


@pytest.mark.slow  # launches
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_checkpoint_and_a_relaunch_resumes_exactly(
    tmp_path, signum, tiny_run_reference):
  reference, stopped = tiny_run_reference, str(tmp_path / "stopped")
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "launch.py"), *TINY_RUN,
       f"--workdir={stopped}"], cwd=ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  log = os.path.join(stopped, "metrics.jsonl")
  deadline = time.time() + 200
  while time.time() < deadline and not (
      os.path.exists(log) and len(metric_log.read(log)) >= 2):
    time.sleep(0.01)
  proc.send_signal(signum)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-2000:]
  assert "Traceback" not in err
  summary = _summary(stopped)
  assert summary["status"] == "interrupted" and 0 < summary["step"] < 300
  assert summary["interrupted_by"] == signal.Signals(signum).name
  ckpt = os.path.join(stopped, "checkpoints")
  assert max(int(d) for d in os.listdir(ckpt) if d.isdigit()) == summary["step"]

  result = _launch(*TINY_RUN, f"--workdir={stopped}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert _records(stopped) == _records(reference)
  resumed = _summary(stopped)
  for key in ("final", "best", "test", "status"):
    assert resumed[key] == _summary(reference)[key]
  # Times add up over both launches.
  assert resumed["wall_time_s"] > summary["wall_time_s"]
  # Every step trained once: the interruption checkpointed where it stopped.
  assert resumed["train_steps"] == 300 and resumed["steps_per_s"] > 0


def test_a_second_launcher_on_a_held_workdir_is_refused(tiny_config, tmp_path):
  workdir = str(tmp_path / "run")
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    os.makedirs(workdir)
    with open(os.path.join(workdir, run_lock.NAME), "w") as f:
      start = run_lock._start_time(holder.pid)  # pylint: disable=protected-access
      f.write(f"{os.uname().nodename} {holder.pid} {start}\n")
    with pytest.raises(ConfigError, match=f"process {holder.pid} on host"):
      train.train_and_evaluate(tiny_config, workdir, progress=False)
    assert os.listdir(workdir) == [run_lock.NAME]  # nothing written
  finally:
    holder.kill()
    holder.wait()
  # The holder is gone: its stale lock is taken over.
  assert train.train_and_evaluate(tiny_config, workdir,
                                  progress=False)["status"] == "completed"
  assert not os.path.exists(os.path.join(workdir, run_lock.NAME))


def test_a_step_too_big_for_the_device_is_refused_before_anything_is_written(
    tiny_config, tmp_path):
  tiny_config.train.batch_size = 10**7
  tiny_config.model.width = 4096
  workdir = str(tmp_path / "run")
  with pytest.raises(ConfigError, match="train.batch_size=10000000"):
    train.train_and_evaluate(tiny_config, workdir, progress=False)
  assert not os.path.exists(workdir)


@pytest.mark.slow  # two sweep launches
def test_ctrl_c_on_a_sweep_stops_its_trials_as_interrupted_and_a_rerun_finishes(
    tmp_path):
  workdir = str(tmp_path / "sweep")
  args = [sys.executable, os.path.join(ROOT, "launch.py"),
          f"--config={TINY}:grid=seeds", "--mode=sweep", f"--workdir={workdir}"]
  proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 200
  first = None
  while time.time() < deadline and first is None:
    first = next((os.path.join(workdir, d, "checkpoints") for d in
                  (os.listdir(workdir) if os.path.isdir(workdir) else [])
                  if os.path.isdir(os.path.join(workdir, d, "checkpoints"))
                  and os.listdir(os.path.join(workdir, d, "checkpoints"))), None)
    time.sleep(0.01)
  proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends the runner
  out, err = proc.communicate(timeout=200)
  assert proc.returncode == 130, out[-2000:] + err[-2000:]
  assert "Traceback" not in err
  results = report.results(workdir)
  assert len(results) == 4
  assert {r["status"] for r in results} == {"interrupted"}, results
  rerun = _launch(*args[2:])
  assert rerun.returncode == 0, rerun.stdout[-2000:]
  assert {r["status"] for r in report.results(workdir)} == {"completed"}
  assert len(report.results(workdir)) == 4


@pytest.mark.slow  # a sweep launch
def test_trials_held_by_another_host_are_named_and_the_sweep_exits_non_zero(
    tmp_path):
  workdir = str(tmp_path / "sweep")
  names = [t.name for t in sweep.expand(TINY, "grid=seeds")]
  os.makedirs(os.path.join(workdir, names[0]))
  with open(os.path.join(workdir, names[0], run_lock.NAME), "w") as f:
    f.write("node-7 4242 99\n")
  result = _launch(f"--config={TINY}:grid=seeds", "--mode=sweep",
                   f"--workdir={workdir}")
  assert result.returncode == 1
  assert f"{names[0]} is held by process 4242 on host node-7" in result.stdout
  done = {r["trial"] for r in report.results(workdir)}
  assert done == set(names[1:])


def test_a_groupable_key_given_a_list_is_a_config_error():
  module = configs.load_module(TINY)
  with pytest.raises(ConfigError, match=r"train.learning_rate=\[0.1, 0.2\] has the "
                     "wrong type: train.learning_rate is a float"):
    sweep.trial_config(module, None, {"train.learning_rate": [0.1, 0.2]})


@pytest.mark.slow  # trains two groups
def test_runs_of_a_group_that_resume_from_different_steps_equal_an_uninterrupted_group(
    tiny_config, tmp_path):
  tiny_config.train.keep_checkpoints = 3
  variants = [_variant(tiny_config, seed=s, learning_rate=lr)
              for s, lr in ((0, 1e-2), (1, 3e-3))]
  reference = [str(tmp_path / f"reference{i}") for i in range(2)]
  train.train_trials(variants, reference)
  resumed = [str(tmp_path / f"resumed{i}") for i in range(2)]
  for src, dst in zip(reference, resumed):
    shutil.copytree(src, dst)
    os.remove(os.path.join(dst, "summary.json"))  # as if killed
  # Run 0 resumes from step 4, run 1 from step 2: run 1 trains steps 3-4 while
  # run 0 waits, frozen, and neither logs or saves anything twice.
  for dst, gone in ((resumed[0], (6,)), (resumed[1], (4, 6))):
    for step in gone:
      shutil.rmtree(os.path.join(dst, "checkpoints", str(step)))
  summaries = train.train_trials(variants, resumed)
  assert [s["status"] for s in summaries] == ["completed", "completed"]
  for a, b in zip(resumed, reference):
    assert _records(a) == _records(b)
    assert _summary(a)["final"] == _summary(b)["final"]
    assert _summary(a)["test"] == _summary(b)["test"]
