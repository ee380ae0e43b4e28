"""The memory-horizon search (seqjax.horizon): the next probe from recorded
results, the verdict of a probe, a resumed search equal to an uninterrupted
one, the report, and the FLOP estimate. Constructed summaries stand in for
training, except in one tiny search through the real sweep runner."""

import collections
import io
import json
import math
import os
import threading

import jax
import pytest

from seqjax import experiment
from seqjax import flops
from seqjax import horizon
from seqjax import models
from seqjax import run_files
from seqjax import sweep
from seqjax import tasks
from seqjax.errors import ConfigError

import helpers  # pylint: disable=g-bad-import-order

CHANCE = 0.125
LEVEL = CHANCE + 0.9 * (1 - CHANCE)  # 0.9 of the way from chance to 1
QUIET = io.StringIO


def _v(solved: bool) -> horizon.Verdict:
  return horizon.Verdict(solved=solved, score=1.0 if solved else 0.0, low=0.0,
                         high=1.0, valid=0.0, learning_rate=1e-3, tied=(),
                         seeds=2, level=LEVEL)


def _probes(**verdicts) -> dict:
  """_probes(s4=True, s8=False) -> {4: solved, 8: failed}."""
  return {int(k[1:]): _v(v) for k, v in verdicts.items()}


def _next(probes, start=4, resolution=1.25, max_length=1024, multiple=1):
  return horizon.next_probe(probes, start=start, resolution=resolution,
                            max_length=max_length, multiple=multiple)


# The next probe.

def test_the_search_starts_at_start_and_doubles_while_solved():
  assert _next({}) == 4
  assert _next(_probes(s4=True)) == 8
  assert _next(_probes(s4=True, s8=True)) == 16


def test_then_bisects_at_the_rounded_geometric_midpoint_to_the_resolution():
  done = dict(s4=True, s8=True, s16=False)
  assert _next(_probes(**done)) == round(math.sqrt(8 * 16)) == 11
  assert _next(_probes(**done, s11=True)) == round(math.sqrt(11 * 16)) == 13
  # 13 / 11 < 1.25: the bracket [11, 13) is found.
  assert _next(_probes(**done, s11=True, s13=False)) is None
  walk = horizon.walk(_probes(**done, s11=True, s13=False), start=4,
                      resolution=1.25, max_length=1024)
  assert (walk.path, walk.solved, walk.failed) == ((4, 8, 16, 11, 13), 11, 13)
  # A coarser resolution stops sooner: 16 / 11 < 1.5.
  assert _next(_probes(**done), resolution=1.5) == 11
  assert _next(_probes(**done, s11=True), resolution=1.5) is None


def test_a_failure_at_the_start_ends_the_search_below_it():
  walk = horizon.walk(_probes(s4=False), start=4, resolution=1.25,
                      max_length=64)
  assert walk.next is None and walk.solved is None and walk.failed == 4


def test_the_search_never_goes_above_max_length_and_ends_there_if_solved():
  assert _next(_probes(s4=True, s8=True), max_length=12) == 12
  walk = horizon.walk(_probes(s4=True, s8=True, s12=True), start=4,
                      resolution=1.25, max_length=12)
  assert walk.next is None and walk.solved == 12 and walk.failed is None


def test_no_length_between_two_neighbours_ends_the_bisection():
  # 2 / 1 is above the resolution, but no integer lies between 1 and 2.
  assert _next(_probes(s1=True, s2=False), start=1) is None


def test_lengths_stay_multiples_of_the_tasks_multiple():
  probes = _probes(s8=True, s16=True, s32=False)
  assert _next(probes, start=8, multiple=8) == 24       # sqrt(512) = 22.6
  assert _next({**probes, **_probes(s24=True)}, start=8, multiple=8) is None


def test_only_the_probes_on_the_path_count():
  """A length recorded outside the path (another resolution's, say) does not
  change the walk: the next probe is a function of the path's results."""
  probes = _probes(s4=True, s8=True, s16=False)
  assert _next({**probes, **_probes(s5=False, s64=True)}) == _next(probes) == 11


@pytest.mark.parametrize("bad", [dict(start=0), dict(max_length=2),
                                 dict(resolution=1.0), dict(multiple=3)])
def test_bad_search_settings_are_config_errors(bad):
  with pytest.raises(ConfigError, match="horizon search"):
    _next({}, **bad)


# The verdict of a probe.

def _summary(valid, test, status="completed", mode="max", chance=CHANCE,
             **extra) -> dict:
  return dict(status=status, metric="accuracy", mode=mode, chance=chance,
              final=dict(accuracy=valid), test=dict(accuracy=test), **extra)


def _trials(*rows) -> list:
  """(lr, seed, valid, test[, status]) rows -> (overrides, summary) pairs."""
  return [({"train.learning_rate": lr, "train.seed": seed},
           _summary(valid, test, *rest)) for lr, seed, valid, test, *rest in rows]


def test_the_learning_rate_is_chosen_on_validation_not_test():
  v = horizon.verdict(_trials((1e-3, 0, 0.5, 0.99), (1e-3, 1, 0.5, 0.99),
                              (1e-2, 0, 0.95, 0.93), (1e-2, 1, 0.97, 0.95)), 0.9)
  assert v.learning_rate == 1e-2 and v.tied == ()
  assert v.score == (0.93 + 0.95) / 2 and (v.low, v.high) == (0.93, 0.95)
  assert v.valid == (0.95 + 0.97) / 2 and v.seeds == 2
  assert v.level == LEVEL and v.solved


def test_the_mean_over_seeds_decides_mixed_seeds():
  mixed = horizon.verdict(_trials((1e-3, 0, 0.9, 1.0), (1e-3, 1, 0.9, 0.7)), 0.9)
  assert mixed.score == 0.85 < LEVEL and not mixed.solved
  assert (mixed.low, mixed.high) == (0.7, 1.0)
  assert horizon.verdict(_trials((1e-3, 0, 0.9, 1.0), (1e-3, 1, 0.9, 0.9)),
                         0.9).solved


def test_a_probe_with_mixed_seeds_below_the_level_is_a_failure_the_search_bisects():
  solved = horizon.verdict(_trials((1e-3, 0, 0.9, 1.0), (1e-3, 1, 0.9, 0.95)), 0.9)
  mixed = horizon.verdict(_trials((1e-3, 0, 0.9, 1.0), (1e-3, 1, 0.9, 0.5)), 0.9)
  assert _next({4: solved, 8: mixed}) == round(math.sqrt(4 * 8)) == 6


def test_tied_learning_rates_are_listed_and_the_first_tried_is_taken():
  v = horizon.verdict(_trials((3e-3, 0, 1.0, 0.5), (1e-3, 0, 1.0, 1.0),
                              (1e-2, 0, 0.2, 1.0)), 0.9)
  assert v.learning_rate == 3e-3 and v.tied == (3e-3, 1e-3)
  assert v.score == 0.5 and not v.solved


def test_a_diverged_seed_scores_the_worst_and_its_learning_rate_is_not_chosen():
  v = horizon.verdict(_trials((1e-2, 0, 0.99, 0.99),
                              (1e-2, 1, 0.99, 0.99, "diverged"),
                              (1e-3, 0, 0.5, 0.4), (1e-3, 1, 0.5, 0.4)), 0.9)
  assert v.learning_rate == 1e-3 and not v.solved
  alone = horizon.verdict(_trials((1e-2, 0, 0.99, 0.99),
                                  (1e-2, 1, 0.99, 0.99, "diverged")), 0.9)
  assert alone.score == -math.inf and alone.low == -math.inf and not alone.solved


def test_a_minimised_metric_is_solved_near_zero():
  """mode "min": perfect is 0, so 0.9 of the way from a chance loss of 0.5 is
  0.05 or lower."""
  trials = [({"train.learning_rate": 1e-3},
             _summary(0.04, test, mode="min", chance=0.5)) for test in (0.04,)]
  v = horizon.verdict(trials, 0.9)
  assert v.level == 0.5 + 0.9 * (0.0 - 0.5) and v.solved
  trials[0][1]["test"]["accuracy"] = 0.06
  assert not horizon.verdict(trials, 0.9).solved


# The plan.

def _spec(**changes) -> dict:
  spec = dict(threshold=0.9, resolution=1.25, length_key="arg.delay",
              grid=sweep.product(sweep.values("train.learning_rate", [1e-3, 1e-2]),
                                 sweep.values("train.seed", [0, 1])),
              searches=[dict(overrides={"arg.model": m}, start=4, max_length=m_max)
                        for m, m_max in (("window", 64), ("lstm", 64), ("gru", 64))])
  spec.update(changes)
  return spec


@pytest.mark.parametrize("changes,message", [
    (dict(threshold=1.5), "threshold=1.5 must be in"),
    (dict(length_key="train.seed"), "length_key='train.seed' is set by"),
    (dict(grid=[]), "at least one trial"),
    (dict(searches=[dict(overrides={}, start=4)]), "missing keys \\['max_length'\\]"),
    (dict(bogus=1), "unknown keys \\['bogus'\\]"),
])
def test_a_bad_plan_is_a_config_error(changes, message):
  with pytest.raises(ConfigError, match=message):
    horizon.plan_from(_spec(**changes))


def test_a_workdir_holding_another_plan_is_refused(tmp_path):
  horizon.write_plan(str(tmp_path), horizon.plan_from(_spec()))
  horizon.write_plan(str(tmp_path), horizon.plan_from(_spec()))  # the same: fine
  assert horizon.read_plan(str(tmp_path)) == horizon.plan_from(_spec())
  with pytest.raises(ConfigError, match="other settings \\(differing: threshold\\)"):
    horizon.write_plan(str(tmp_path), horizon.plan_from(_spec(threshold=0.8)))


# The search, with constructed trials.

# The true horizon of each model: it is solved at delays up to this; "lstm" is
# solved only on validation with its larger learning rate, which test follows.
TRUE = {"window": 11, "lstm": 100, "gru": 2}


class FakeTrainer:
  """run_trials that writes each trial's config.json and summary.json as the
  runner would (a finished trial is skipped), counting what it trains; stops
  (KeyboardInterrupt) after `stop_after` trials, writing nothing more."""

  def __init__(self, workdir, stop_after=None):
    self.workdir, self.stop_after = workdir, stop_after
    self.calls, self.trained = 0, collections.Counter()

  def __call__(self, trials):
    self.calls += 1
    for o in trials:
      name = sweep.trial_name(o)
      trial_dir = os.path.join(self.workdir, name)
      summary = run_files.read_json(os.path.join(trial_dir, "summary.json"))
      if summary and summary["status"] in run_files.FINAL:
        continue
      if self.stop_after is not None and sum(self.trained.values()) >= self.stop_after:
        raise KeyboardInterrupt
      self.trained[name] += 1
      run_files.init(trial_dir, _trial_config(o))
      run_files.write_json(os.path.join(trial_dir, "summary.json"), _fake(o))


def _trial_config(o):
  config = helpers.run_config(
      tasks.task_config("copy_memory", delay=o["arg.delay"], num_symbols=4,
                        alphabet=8),
      models.model_config(o["arg.model"], width=16), batch_size=16)
  return config


def _fake(o) -> dict:
  solved = o["arg.delay"] <= TRUE[o["arg.model"]]
  good = 0.98 + 0.01 * o["train.seed"]
  test = good if solved and o["train.learning_rate"] == 1e-2 else 0.2
  return _summary(0.9 if o["train.learning_rate"] == 1e-2 else 0.5, test,
                  num_params=1000, train_steps=100 + o["arg.delay"],
                  train_time_s=1.0, wall_time_s=5.0 + o["train.seed"])


def _walks(walks: dict) -> dict:
  return {name: (w.path, w.next, w.solved, w.failed) for name, w in walks.items()}


EXPECTED = {
    "model=window": ((4, 8, 16, 11, 13), None, 11, 13),
    "model=lstm": ((4, 8, 16, 32, 64), None, 64, None),
    "model=gru": ((4,), None, None, 4),
}


def test_a_search_walks_each_model_to_its_bracket_one_probe_per_call(tmp_path):
  plan = horizon.plan_from(_spec())
  fake, out = FakeTrainer(str(tmp_path)), QUIET()
  walks = _walks(horizon.search(plan, str(tmp_path), fake, out=out))
  assert walks == EXPECTED
  assert fake.calls == 5 + 5 + 1  # one call per probe
  # Ready probes start in the order they became ready: the first probes of
  # every search, then each search's next as its last one ends.
  started = [line for line in out.getvalue().splitlines() if "probe at" in line]
  assert started[:4] == ["[horizon] model=window: probe at 4",
                         "[horizon] model=lstm: probe at 4",
                         "[horizon] model=gru: probe at 4",
                         "[horizon] model=window: probe at 8"]
  assert set(fake.trained.values()) == {1}
  assert len(fake.trained) == 4 * (5 + 5 + 1)


def test_a_search_never_waits_for_another_searchs_probe(tmp_path):
  """With two jobs, the window's first probe runs until the lstm search has
  finished three probes of its own: searches in rounds would wait forever
  (here: fail at the timeout) for the window's probe before the lstm's next."""
  plan = horizon.plan_from(_spec())
  fake = FakeTrainer(str(tmp_path))
  lstm_probes, three = [], threading.Event()

  def run_trials(trials):
    o = trials[0]
    if o["arg.model"] == "window" and o["arg.delay"] == 4:
      assert three.wait(timeout=60), "the lstm search waited for the window's probe"
    fake(trials)
    if o["arg.model"] == "lstm":
      lstm_probes.append(o["arg.delay"])
      if len(lstm_probes) == 3:
        three.set()

  walks = _walks(horizon.search(plan, str(tmp_path), run_trials, out=QUIET(),
                                jobs=2))
  assert walks == EXPECTED
  assert lstm_probes == [4, 8, 16, 32, 64]
  assert set(fake.trained.values()) == {1}


def test_a_resumed_search_equals_an_uninterrupted_one_and_a_rerun_trains_nothing(
    tmp_path):
  plan = horizon.plan_from(_spec())
  whole = str(tmp_path / "whole")
  expected = _walks(horizon.search(plan, whole, FakeTrainer(whole), out=QUIET()))
  # Killed in the middle of a probe (the 4th), then rerun, then killed and rerun
  # again: the same path, and no trial trained twice.
  cut = str(tmp_path / "cut")
  trained = collections.Counter()
  for stop_after in (14, 27, None):
    fake = FakeTrainer(cut, stop_after)
    try:
      walks = _walks(horizon.search(plan, cut, fake, out=QUIET()))
    except KeyboardInterrupt:
      assert stop_after is not None
    trained.update(fake.trained)
  assert walks == expected
  assert set(trained.values()) == {1}
  assert sorted(trained) == sorted(os.listdir(whole))
  rerun = FakeTrainer(cut)
  assert _walks(horizon.search(plan, cut, rerun, out=QUIET())) == expected
  assert rerun.calls == 0


def test_a_probe_that_does_not_finish_stops_its_search_only(tmp_path):
  plan = horizon.plan_from(_spec())

  def crashes_on_lstm(trials):
    for o in trials:
      if o["arg.model"] == "lstm" and o["arg.delay"] == 8:
        trial_dir = os.path.join(str(tmp_path), sweep.trial_name(o))
        os.makedirs(trial_dir, exist_ok=True)
        run_files.write_json(os.path.join(trial_dir, "summary.json"),
                             dict(status="failed", error="boom"))
      else:
        FakeTrainer(str(tmp_path))([o])

  out = QUIET()
  walks = _walks(horizon.search(plan, str(tmp_path), crashes_on_lstm, out=out))
  assert walks["model=lstm"] == ((4,), 8, 4, None)
  assert walks["model=window"] == ((4, 8, 16, 11, 13), None, 11, 13)
  assert "model=lstm: the probe at 8 did not finish" in out.getvalue()


# The report.

def test_the_report_gives_each_bracket_its_cost_and_the_plot(tmp_path):
  workdir = str(tmp_path)
  plan = horizon.plan_from(_spec())
  horizon.write_plan(workdir, plan)
  horizon.search(plan, workdir, FakeTrainer(workdir), out=QUIET())
  result = horizon.report(workdir)
  rows = {r["model"]: r for r in result["searches"]}
  window = rows["window"]
  assert (window["status"], window["horizon"], window["text"]) == (
      "bracketed", 11, "11 (fails at 13)")
  assert window["solved"]["length"] == 11 and window["failed"]["length"] == 13
  assert window["solved"]["score"] == (0.98 + 0.99) / 2
  assert (window["solved"]["low"], window["solved"]["high"]) == (0.98, 0.99)
  assert window["solved"]["learning_rate"] == 1e-2
  assert window["failed"]["score"] == 0.2 and not window["failed"]["solved"]
  assert window["window"] == 8  # the window model's default k in this config
  assert (window["task"], window["metric"], window["chance"], window["level"]) == (
      "copy_memory", "accuracy", CHANCE, LEVEL)
  assert [p["length"] for p in window["probes"]] == [4, 8, 16, 11, 13]
  # Cost: 4 trials per probe; steps 100 + delay each; 1 s of training loop
  # each; wall: the probe's longest trial (seed 1: 6 s).
  assert window["trial_steps"] == sum(4 * (100 + d) for d in (4, 8, 16, 11, 13))
  assert window["train_s"] == 4 * 5 and window["wall_s"] == 6.0 * 5
  config = _trial_config({"arg.delay": 4, "arg.model": "window"}).to_dict()
  per_probe = [4 * flops.training(config["model"], 1000, d + 8, 16, 100 + d)
               for d in (4, 8, 16, 11, 13)]
  assert window["flops"] == pytest.approx(sum(per_probe), rel=1e-12)
  assert window["num_params"] == 1000
  lstm, gru = rows["lstm"], rows["gru"]
  assert (lstm["status"], lstm["text"], lstm["failed"]) == (
      "at least", ">= 64 (the longest length tried)", None)
  assert (gru["status"], gru["horizon"], gru["text"], gru["solved"]) == (
      "below the start", None, "< 4 (fails at the start)", None)

  stored = json.load(open(os.path.join(workdir, "horizon.json")))
  assert stored["threshold"] == 0.9 and len(stored["searches"]) == 3
  text = open(os.path.join(workdir, "report.md")).read()
  assert result["markdown"] in text
  assert "## copy_memory (accuracy; chance 0.125; solved at 0.9125 or better)" in text
  assert ("| window | 11 (fails at 13) | 11: 0.985 (0.98-0.99; lr 0.01) | "
          "13: 0.2 (0.2-0.2; lr 0.01) | 4, 8, 16, 11, 13 |") in text
  assert "| gru | < 4 (fails at the start) | - | 4: 0.2" in text
  assert os.path.getsize(os.path.join(workdir, horizon.PLOT)) > 0
  # The report is a function of the trial directories: written again, the same.
  assert horizon.report(workdir)["markdown"] == result["markdown"]


# The FLOP estimate.

def test_flops_are_two_per_parameter_per_token_plus_attention():
  lstm = models.model_config("lstm").to_dict()
  assert flops.forward_per_token(lstm, 1000, 64) == 2000
  transformer = models.model_config("transformer", width=32, num_layers=2).to_dict()
  assert flops.forward_per_token(transformer, 1000, 64) == 2000 + 4 * 2 * 64 * 32
  assert flops.training(lstm, 1000, 64, 16, 10) == 3 * 2000 * 16 * 64 * 10
  mamba = models.model_config("mamba", width=32).to_dict()
  assert flops.forward_per_token(mamba, 10, 64) == 20 + 6 * 1 * 64 * 16


# The experiment and one tiny search through the real runner.

def test_the_experiments_searches_build():
  module = helpers.load_experiment("horizon")
  plan = horizon.plan_from(module.get_search("quick"))
  models_ = {s.overrides["arg.model"] for s in plan.searches}
  assert models_ == {"window", "rnn", "lstm", "gru", "lru", "transformer"}
  assert len(plan.searches) == 12 and len(plan.grid) == 6
  assert len(horizon.plan_from(module.get_search("quick,selective")).searches) == 16
  path = os.path.join(helpers.ROOT, "experiments", "horizon.py")
  horizon.check(path, "quick", plan)
  config = module.get_config("quick,model=window,task=copy_memory,length=8")
  assert config.model.window == 16 and config.train.eval_every == 100
  assert config.train.steps == 600 and config.train.batch_size == 16
  if "stop_when_solved" in config.train:
    assert config.train.stop_when_solved


@pytest.mark.slow  # a search through the sweep runner
def test_a_tiny_search_through_the_sweep_runner_resumes_with_nothing_to_train(
    tmp_path):
  path = os.path.join(helpers.ROOT, "tests", "experiments", "tiny_horizon.py")
  workdir = str(tmp_path)
  first = QUIET()
  counts = horizon.run(path, None, workdir, out=first)
  assert counts == {"done": 1, "unfinished": 0, "interrupted": 0}
  rows = json.load(open(os.path.join(workdir, "horizon.json")))["searches"]
  assert rows[0]["probes"][0]["length"] == 2 and rows[0]["trial_steps"] > 0
  rerun = FakeTrainer(workdir)
  again = QUIET()
  assert horizon.run(path, None, workdir, out=again, run_trials=rerun) == counts
  assert rerun.calls == 0
  assert again.getvalue() in first.getvalue()  # the same table


def test_a_stopped_search_says_so_and_reports_what_it_has(tmp_path):
  path = os.path.join(helpers.ROOT, "tests", "experiments", "tiny_horizon.py")

  def stopped(trials):
    del trials
    raise KeyboardInterrupt

  out = QUIET()
  counts = horizon.run(path, None, str(tmp_path), out=out, run_trials=stopped)
  assert counts == {"done": 0, "unfinished": 1, "interrupted": 1}
  assert "rerun the same command to resume" in out.getvalue()
  row = json.load(open(os.path.join(str(tmp_path), "horizon.json")))["searches"][0]
  assert (row["status"], row["text"], row["trial_steps"]) == (
      "unfinished", "unfinished (next probe: 2)", 0)


@pytest.mark.parametrize("flags,message", [
    (dict(shard_spec="2/2"), "--sweep_shard='2/2'"),
    (dict(group_size=0), "group_size must be positive"),
    (dict(overrides={"arg.delay": 3}), "length_key='arg.delay' is set by"),
])
def test_bad_flags_are_refused_before_anything_is_written(tmp_path, flags, message):
  path = os.path.join(helpers.ROOT, "tests", "experiments", "tiny_horizon.py")
  with pytest.raises(ConfigError, match=message):
    horizon.run(path, None, str(tmp_path / "dir"), out=QUIET(),
                run_trials=FakeTrainer(str(tmp_path)), **flags)
  assert not os.path.exists(tmp_path / "dir")


def test_a_stored_plan_names_the_same_trials_as_the_plan_it_stores(tmp_path):
  """Trial names follow the order of the overrides, and JSON files are written
  with sorted keys: a stored plan read back named other trials than the search
  trained (the quick search's report found none of its 263 trials)."""
  spec = _spec(grid=sweep.product(sweep.values("train.seed", [0, 1]),
                                  sweep.values("train.learning_rate", [1e-3])),
               searches=[dict(overrides={"arg.task": "copy_memory", "arg.model": "lstm"},
                              start=4, max_length=64)])
  plan = horizon.plan_from(spec, {"model.width": 8, "arg.quick": True})
  horizon.write_plan(str(tmp_path), plan)
  stored = horizon.read_plan(str(tmp_path))
  names = lambda p: [sweep.trial_name(o) for s in p.searches
                     for o in horizon.probe_trials(p, s, 8)]
  assert names(stored) == names(plan)
  assert names(plan)[0].startswith("task=copy_memory,model=lstm,")


def test_ready_probes_start_costliest_first(tmp_path):
  """With one job, the ready probe of the highest cost starts next (here the
  cost is the length, the gru's a little more): the gru's first, then the
  window's (first of two equal costs), whose following probes cost more than
  the lstm's waiting one, then the lstm's."""
  plan = horizon.plan_from(_spec())
  out = QUIET()
  cost = lambda one, length: length + (0.5 if one.name == "model=gru" else 0)
  walks = _walks(horizon.search(plan, str(tmp_path), FakeTrainer(str(tmp_path)),
                                out=out, cost=cost))
  assert walks == EXPECTED
  started = [line.split("] ")[1].replace("model=", "").replace(": probe at", "")
             for line in out.getvalue().splitlines() if "probe at" in line]
  assert started == ["gru 4", "window 4", "window 8", "window 16", "window 11",
                     "window 13", "lstm 4", "lstm 8", "lstm 16", "lstm 32",
                     "lstm 64"]


def test_a_probes_cost_is_its_trials_analytic_flops():
  module = helpers.load_experiment("horizon")
  plan = horizon.plan_from(module.get_search("quick"))
  cost = horizon.probe_flops(module, "quick", plan)
  by_name = {s.name: s for s in plan.searches}
  lstm = by_name["task=copy_memory,model=lstm"]
  transformer = by_name["task=copy_memory,model=transformer"]
  assert cost(lstm, 8) < cost(lstm, 16) < cost(transformer, 16)
  config = sweep.trial_config(module, "quick", horizon.probe_trials(plan, lstm, 8)[0])
  exp = experiment.build(config)
  params = sum(x.size for x in jax.tree_util.tree_leaves(exp.state_shapes.params))
  assert cost(lstm, 8) == len(plan.grid) * flops.training(
      config.model.to_dict(), params, exp.task.io.length, 16, 600)
