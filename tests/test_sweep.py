"""Sweeps: expansion, naming, resume, failures, shards, locks, results, report."""

import io
import json
import os
import subprocess
import sys

import ml_collections
import pytest

from seqjax import configs
from seqjax import report
from seqjax import run_lock
from seqjax import sweep
from seqjax.errors import ConfigError

import helpers  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "tests", "experiments", "tiny_sweep.py")


def test_combinators():
  a = sweep.values("arg.model", ["lstm", "gru"])
  b = sweep.values("train.seed", [0, 1])
  assert sweep.product(a, b) == [
      {"arg.model": "lstm", "train.seed": 0}, {"arg.model": "lstm", "train.seed": 1},
      {"arg.model": "gru", "train.seed": 0}, {"arg.model": "gru", "train.seed": 1}]
  assert sweep.zipped(a, b) == [{"arg.model": "lstm", "train.seed": 0},
                                {"arg.model": "gru", "train.seed": 1}]
  assert sweep.chain(a, b) == a + b
  with pytest.raises(ConfigError, match="one length"):
    sweep.zipped(a, b[:1])


def test_trial_names_are_readable_and_stable():
  overrides = {"arg.model": "lstm", "task.delay": 20,
               "train.learning_rate": 0.001, "train.seed": 0}
  assert (sweep.trial_name(overrides) ==
          "model=lstm,task.delay=20,train.learning_rate=0.001,train.seed=0")
  assert sweep.trial_name({"arg.note": "a b/c"}) == "note=a_b_c"


def test_trial_config_applies_arg_and_dotted_overrides():
  module = configs.load_module(TINY)
  config = sweep.trial_config(module, None, {"arg.model": "gru",
                                             "train.learning_rate": 0.5})
  assert config.model.name == "gru" and config.train.learning_rate == 0.5
  with pytest.raises(ConfigError, match="names no config key"):
    sweep.trial_config(module, None, {"train.lr": 0.5})


def test_shards_are_disjoint_and_complete():
  trials = sweep.expand(TINY, None)
  assert len(trials) == 8
  parts = [sweep.shard(trials, f"{i}/3") for i in range(3)]
  names = [t.name for part in parts for t in part]
  assert sorted(names) == sorted(t.name for t in trials)
  with pytest.raises(ConfigError, match="--sweep_shard='3/2'"):
    sweep.shard(trials, "3/2")


def test_lock_keeps_a_second_process_off_and_stale_locks_are_taken(tmp_path):
  first, second = run_lock.RunLock(str(tmp_path)), run_lock.RunLock(str(tmp_path))
  assert first.acquire()
  assert not second.acquire()
  assert run_lock.holder(str(tmp_path))["live"] is True
  first.release()
  assert second.acquire()
  second.release()
  host = os.uname().nodename
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True).stdout.strip()
  with open(tmp_path / ".lock", "w") as f:  # a process that died
    f.write(f"{host} {dead} 12345\n")
  assert run_lock.holder(str(tmp_path))["live"] is False
  assert run_lock.RunLock(str(tmp_path)).acquire()
  os.remove(tmp_path / ".lock")
  with open(tmp_path / ".lock", "w") as f:  # a live pid, reused by another process
    f.write(f"{host} {os.getpid()} 1\n")
  assert run_lock.holder(str(tmp_path))["live"] is False
  os.remove(tmp_path / ".lock")
  with open(tmp_path / ".lock", "w") as f:  # another host: never taken over
    f.write(f"other-host {dead} 1\n")
  assert run_lock.holder(str(tmp_path)) == dict(host="other-host", pid=int(dead),
                                                 live=None)
  assert not run_lock.RunLock(str(tmp_path)).acquire()


@pytest.mark.slow  # sweeps
def test_sweep_runs_resumes_records_failures_and_reports(tmp_path, monkeypatch):
  workdir = str(tmp_path / "sweep")
  module = configs.load_module(TINY)
  grid = sweep.product(sweep.values("arg.model", ["lstm"]),
                       sweep.values("arg.delay", [2, 4]),
                       sweep.values("train.learning_rate", [0.01, 0.001]))
  trials = [sweep.Trial(sweep.trial_name(o), o, sweep.trial_config(module, None, o), 4)
            for o in grid + [{"arg.fail": True}]]  # the last one crashes
  monkeypatch.setattr(sweep, "expand", lambda path, arg, overrides=None: trials)
  counts = sweep.run(TINY, None, workdir, jobs=2, out=open(os.devnull, "w"))
  assert counts == {"done": 4, "running": 0, "failed": 1, "interrupted": 0,
                    "held": 0}
  results = {r["trial"]: r for r in report.results(workdir)}
  assert len(results) == 5
  failed = results["fail=True"]
  assert failed["status"] == "failed" and "no final summary.json" in failed["error"]
  assert "bogus" in open(os.path.join(workdir, failed["log"])).read()
  done = results["model=lstm,delay=2,train.learning_rate=0.01"]
  assert done["status"] == "completed" and done["metric"] == "accuracy"
  assert done["axis"] == "arg.delay"  # tiny_sweep.py's SWEEP_AXIS
  assert done["overrides"] == grid[0]
  for key in ("chance", "final", "best", "test", "num_params", "steps_per_s",
              "wall_time_s", "peak_memory_mb", "step_temp_mb"):
    assert done[key] is not None, key

  # Rerun: completed trials are not run again, the failed one is retried,
  # and the report still has one line per trial.
  stamp = os.path.getmtime(os.path.join(workdir, done["trial"], "summary.json"))
  out = io.StringIO()
  counts = sweep.run(TINY, None, workdir, jobs=1, out=out)
  assert counts["done"] == 4 and counts["failed"] == 1
  assert "4 of 5 trials already finished" in out.getvalue()
  assert os.path.getmtime(os.path.join(workdir, done["trial"], "summary.json")) == stamp
  assert len(report.results(workdir)) == 5

  data = report.write(workdir)["copy_memory"]
  assert data["length_key"] == "arg.delay" and data["chance"] == 0.25
  assert [(p["model"], p["length"]) for p in data["points"]] == [("lstm", 2), ("lstm", 4)]
  assert os.path.exists(os.path.join(workdir, "copy_memory_accuracy.png"))
  text = open(os.path.join(workdir, "report.md")).read()
  assert "| lstm | 2 |" in text
  assert f"- fail=True: failed, no final summary.json after its group ended (log: {failed['log']})" in text
  with open(os.path.join(workdir, "results.jsonl")) as f:
    assert [json.loads(line) for line in f] == report.results(workdir)


def test_time_left_counts_only_the_trials_still_to_train():
  """Finished trials not yet reached in this run take no time: 10 trials, 8
  finished before, 1 trained at 2 s, so 1 left, about 2 s (not 18 s)."""
  out = io.StringIO()
  runner = sweep.Runner("/nonexistent", 1, out)
  runner.total, runner.durations = 10, [2.0]
  runner.finished = {f"t{i}" for i in range(8)}
  runner.counts["done"] = 1
  runner.show()
  assert "about 2 s left" in out.getvalue()


def test_slots_split_every_core_where_the_system_gives_no_affinity(monkeypatch):
  """macOS has no sched_getaffinity: the runner's slots split os.cpu_count()."""
  monkeypatch.delattr(sweep.os, "sched_getaffinity")
  monkeypatch.setattr(sweep.os, "cpu_count", lambda: 4)
  runner = sweep.Runner("/nonexistent", 2, io.StringIO())
  slots = [runner.free.get()["cores"] for _ in range(2)]
  assert slots == [[0, 1], [2, 3]]


@pytest.mark.slow  # a sweep
def test_a_group_runs_single_threaded_eigen_even_with_several_cores(
    tmp_path, monkeypatch):
  """Multi-threaded Eigen can hang a vmapped group step on XLA:CPU, so every
  group process gets --xla_cpu_multi_thread_eigen=false after the user's flags,
  and a slot of several cores says so."""
  seen = {}

  class Started(Exception):
    pass

  def popen(args, env, **kwargs):
    del args, kwargs
    seen.update(env)
    raise Started

  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
  monkeypatch.setattr(sweep.subprocess, "Popen", popen)
  runner = sweep.Runner(str(tmp_path), 1, io.StringIO())
  trial = sweep.Trial("t", {}, ml_collections.ConfigDict(), 4)
  with pytest.raises(Started):
    runner._run([trial], {"cores": [0, 1, 2, 3]})  # pylint: disable=protected-access
  assert seen["XLA_FLAGS"] == ("--xla_cpu_enable_fast_math=false "
                               "--xla_cpu_multi_thread_eigen=false")
  out = io.StringIO()
  monkeypatch.setattr(sweep.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
  monkeypatch.setattr(sweep.parallel, "has_accelerator", lambda: False)
  monkeypatch.setattr(sweep, "expand", lambda path, arg, overrides=None: [])
  sweep.run(TINY, None, str(tmp_path / "w"), jobs=2, group_size=1, out=out)
  assert "each group gets 2 cores" in out.getvalue() and "--jobs=4" in out.getvalue()


def _fake_trial(workdir, name, overrides, valid, test):
  helpers.fake_trial(workdir, name, overrides, dict(
      metric="accuracy", chance=0.125, final={"accuracy": valid},
      test={"accuracy": test}, steps_per_s=10.0, peak_memory_mb=100.0,
      num_params=5))


def test_report_picks_the_learning_rate_on_validation_not_test(tmp_path):
  workdir = str(tmp_path)
  for seed in (0, 1):
    # lr 0.1: better on validation, worse on test; lr 0.01 the other way round.
    _fake_trial(workdir, f"a{seed}", {"task.delay": 10, "train.learning_rate": 0.1,
                                      "train.seed": seed}, 0.9, 0.5 + 0.1 * seed)
    _fake_trial(workdir, f"b{seed}", {"task.delay": 10, "train.learning_rate": 0.01,
                                      "train.seed": seed}, 0.6, 0.95)
  point, = report.aggregate(workdir)["copy_memory"]["points"]
  assert point["learning_rate"] == 0.1
  assert point["test_mean"] == pytest.approx(0.55)
  assert (point["test_min"], point["test_max"]) == (0.5, 0.6)
  assert point["seeds"] == 2 and point["step_ms"] == pytest.approx(100.0)


@pytest.mark.slow  # sweep launches
def test_launch_sweep_mode_end_to_end(tmp_path):
  workdir = str(tmp_path / "sweep")
  result = subprocess.run(
      [sys.executable, "launch.py", f"--config={TINY}", "--mode=sweep",
       f"--workdir={workdir}", "--jobs=2", "--sweep_shard=0/4"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert len(report.results(workdir)) == 2  # 8 trials, shard 0 of 4
  assert len(open(os.path.join(workdir, "results.jsonl")).readlines()) == 2
  assert os.path.exists(os.path.join(workdir, "report.md"))


def test_the_plot_axis_is_the_one_the_experiment_names_in_any_order(tmp_path):
  """reproduce.py's MQAR sweep with its length and width lines swapped: the
  overrides come in another order, the axis (SWEEP_AXIS) stays the length."""
  axis = helpers.load_experiment("reproduce").SWEEP_AXIS
  got = []
  for order in (("arg.length", "arg.width"), ("arg.width", "arg.length")):
    workdir = str(tmp_path / order[0])
    for length in (64, 128):
      for width in (16, 64):
        values = {"arg.length": length, "arg.width": width}
        helpers.fake_trial(workdir, f"l{length}w{width}",
                           {"arg.model": "lstm", **{k: values[k] for k in order}},
                           dict(metric="accuracy", chance=0.0, final={"accuracy": 0.5},
                                test={"accuracy": width / 100}),
                           task="associative_recall", axis=axis)
    data = report.write(workdir)["associative_recall"]
    assert data["length_key"] == "arg.length"
    got.append([(p["length"], p["setting"], p["test_mean"]) for p in data["points"]])
  assert got[0] == got[1] == [(64, {"arg.width": 16}, 0.16), (128, {"arg.width": 16}, 0.16),
                              (64, {"arg.width": 64}, 0.64), (128, {"arg.width": 64}, 0.64)]


def test_an_axis_that_is_no_override_of_the_sweep_is_refused(tmp_path):
  path = tmp_path / "bad_axis.py"
  path.write_text(open(TINY).read().replace('SWEEP_AXIS = "arg.delay"',
                                            'SWEEP_AXIS = "arg.length"'))
  with pytest.raises(ConfigError, match="SWEEP_AXIS='arg.length' is no override"):
    sweep.expand(str(path), None)
