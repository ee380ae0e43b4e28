"""The memory horizon: the longest dependency length a model solves within a
fixed training budget, found by a search instead of read off a fixed grid.

An experiment that defines `get_search(arg)` beside `get_config(arg)` declares
searches, one per (architecture, task): the overrides that select them (as a
sweep's, `arg.model`, `arg.task`), where each starts and the longest length it
may try; the override that sets the length (`length_key`, e.g. `arg.length`);
the grid of one probe (learning rates x seeds); the threshold and resolution.

The rule. A search probes `start`, doubles the length while the probe is
solved (never above `max_length`), then bisects between the longest length
solved and the shortest failed (the geometric midpoint, rounded to a multiple
of `multiple`) until their ratio is below `resolution`. A failure at `start`
ends it: the horizon is below the start; a search solved at `max_length` ends
there: the horizon is at least the longest length tried. The horizon is the
longest length solved; the bracket is that and the shortest length failed.

A probe is one trial group: the grid at one length, each trial in
DIR/<sweep.trial_name of its overrides>/. Its verdict (`verdict`): the learning
rate is chosen on the validation stream (`final` of summary.json, mean over
seeds; tied learning rates are listed and the first tried is taken, as in
seqjax.report), and the probe is solved iff the mean over seeds of the test
stream's headline metric at that learning rate is at least `threshold` of the
way from chance to perfect: perfect is 1 for a maximised metric (an accuracy)
and 0 for a minimised one (a loss, an error). A diverged trial scores the worst
value (seqjax.scores), so a learning rate with a diverged seed fails.

Determinism and resumption: the next probe is a function of the recorded
results only (`walk` replays the path from `start` through the finished trial
directories), so a rerun or a resumed search walks the same path and trains
nothing twice. The searches run each on its own: a search's next probe starts
as soon as its last one has ended and one of `jobs` slots is free (no search
waits for another's probe; of the ready probes, the costliest by analytic
FLOPs first, `probe_flops`), through one seam, `run_trials(list of a probe's
trial overrides)`, called from up to `jobs` threads at once; `sweep_runner` is
its default (the sweep's groups and processes, one sweep.Runner and its
slots shared by every probe). DIR/horizon_plan.json holds the search's settings (as
a run's config.json holds its config); `report` writes DIR/horizon.json,
DIR/report.md and DIR/horizon_compute.png from the plan and the trials.
"""

import concurrent.futures
import contextlib
import dataclasses
import json
import math
import os
import sys
from typing import Any, Callable, Mapping, Sequence

import ml_collections

from seqjax import configs
from seqjax import flops
from seqjax import run_files
from seqjax import scores
from seqjax import sweep
from seqjax.errors import ConfigError

LEARNING_RATE = "train.learning_rate"
PERFECT = {"max": 1.0, "min": 0.0}  # see the module docstring
PLAN = "horizon_plan.json"
PLOT = "horizon_compute.png"


@dataclasses.dataclass(frozen=True)
class Verdict:
  """What one probe (the grid at one length) came to."""
  solved: bool
  score: float            # mean over seeds of the test metric, at the chosen lr
  low: float              # its min over seeds
  high: float             # its max over seeds
  valid: float            # mean over seeds of the validation metric, chosen lr
  learning_rate: Any      # the learning rate chosen on validation
  tied: tuple             # the learning rates tied with it on validation, if any
  seeds: int              # trials at the chosen learning rate
  level: float            # the score that counts as solved


@dataclasses.dataclass(frozen=True)
class Walk:
  """A search's path so far, replayed from the recorded probes."""
  path: tuple[int, ...]   # the lengths probed, in order
  next: int | None        # the length to probe next; None: the search is done
  solved: int | None      # the longest length solved (None: none)
  failed: int | None      # the shortest length failed above it (None: none)


@dataclasses.dataclass(frozen=True)
class Search:
  """One (architecture, task) search."""
  name: str               # sweep.trial_name of `overrides`
  overrides: dict         # {"arg.task": ..., "arg.model": ...}
  start: int
  max_length: int
  multiple: int = 1       # lengths the task accepts (every integer for today's)


@dataclasses.dataclass(frozen=True)
class Plan:
  """The settings of a horizon search (an experiment's `get_search`)."""
  threshold: float        # solved: this fraction of the way from chance to perfect
  resolution: float       # bisect until shortest failed / longest solved < this
  length_key: str         # the override that sets the dependency length
  grid: tuple             # the overrides of a probe's trials (lr x seeds)
  searches: tuple         # Search, ...
  overrides: dict = dataclasses.field(default_factory=dict)  # on every trial


def next_probe(probes: Mapping[int, Verdict], *, start: int, resolution: float,
               max_length: int, multiple: int = 1) -> int | None:
  """The next length to probe given the recorded `probes` ({length: Verdict}),
  or None when the search is done (see the module docstring for the rule)."""
  return walk(probes, start=start, resolution=resolution,
              max_length=max_length, multiple=multiple).next


def walk(probes: Mapping[int, Verdict], *, start: int, resolution: float,
         max_length: int, multiple: int = 1) -> Walk:
  """Replays the search from `start` through `probes`; only the lengths on its
  path are read, so other recorded lengths change nothing."""
  _check_bounds(start, resolution, max_length, multiple)
  path, solved, failed, length = [], None, None, start
  while length is not None and length in probes:
    path.append(length)
    if probes[length].solved:
      solved = length
    else:
      failed = length
    length = (None if solved is None else
              _following(solved, failed, resolution, max_length, multiple))
  return Walk(tuple(path), length, solved, failed)


def _following(solved: int, failed: int | None, resolution: float,
               max_length: int, multiple: int) -> int | None:
  if failed is None:  # doubling
    return None if solved >= max_length else min(2 * solved, max_length)
  if failed / solved < resolution:
    return None
  middle = multiple * round(math.sqrt(solved * failed) / multiple)
  return middle if solved < middle < failed else None  # no length in between


def _check_bounds(start, resolution, max_length, multiple) -> None:
  if not (isinstance(multiple, int) and multiple >= 1):
    raise ConfigError(f"A horizon search's multiple={multiple!r} must be a "
                      "positive integer.")
  for name, value in (("start", start), ("max_length", max_length)):
    if not (isinstance(value, int) and value >= 1 and value % multiple == 0):
      raise ConfigError(f"A horizon search's {name}={value!r} must be a positive "
                        f"integer and a multiple of {multiple}.")
  if max_length < start:
    raise ConfigError(f"A horizon search's max_length={max_length} is below its "
                      f"start={start}.")
  if not (isinstance(resolution, (int, float)) and resolution > 1):
    raise ConfigError(f"A horizon search's resolution={resolution!r} must be a "
                      "number above 1 (e.g. 1.25).")


def solved_level(chance: float, mode: str, threshold: float) -> float:
  """The score `threshold` of the way from `chance` to perfect (PERFECT)."""
  return chance + threshold * (PERFECT[mode] - chance)


def verdict(trials: Sequence[tuple[dict, dict]], threshold: float) -> Verdict:
  """The verdict of one probe from its finished trials, (overrides, summary)
  pairs in grid order (the first learning rate is the first tried)."""
  if not trials:
    raise ValueError("verdict of a probe without trials.")
  first = trials[0][1]
  metric, mode = first["metric"], first["mode"]
  by_lr = {}
  for overrides, summary in trials:
    by_lr.setdefault(overrides.get(LEARNING_RATE, "default"), []).append(summary)
  valid = {lr: _mean(_value(s, "final", metric, mode) for s in ss)
           for lr, ss in by_lr.items()}
  # scores.best sends ties to the latest item; reversed, that is the first tried.
  pick = scores.best(reversed(list(valid)), key=valid.get, mode=mode)
  tied = tuple(lr for lr in valid if valid[lr] == valid[pick])
  test = [_value(s, "test", metric, mode) for s in by_lr[pick]]
  level = solved_level(first["chance"], mode, threshold)
  score = _mean(test)
  return Verdict(solved=scores.reaches(score, level, mode), score=score,
                 low=min(test), high=max(test), valid=valid[pick],
                 learning_rate=pick, tied=tied if len(tied) > 1 else (),
                 seeds=len(test), level=level)


def _value(summary: dict, split: str, metric: str, mode: str) -> float:
  """The trial's metric on `split`; the worst score if it diverged or lacks it."""
  value = (None if summary.get("status") == "diverged"
           else (summary.get(split) or {}).get(metric))
  return scores.score(value, mode)


def _mean(values) -> float:
  values = list(values)
  return sum(values) / len(values)


# The plan: from an experiment's get_search, to and from DIR/horizon_plan.json.

SEARCH_KEYS = ("overrides", "start", "max_length", "multiple")
PLAN_KEYS = ("threshold", "resolution", "length_key", "grid", "searches")


def plan_from(spec: Mapping, overrides: dict | None = None) -> Plan:
  """The Plan of a `get_search(arg)` result: {"threshold", "resolution",
  "length_key", "grid": [overrides, ...], "searches": [{"overrides", "start",
  "max_length"[, "multiple"]}, ...]}; `overrides` (`--config.KEY=VALUE`) join
  every trial's. Refuses unknown or missing keys and bad values."""
  spec = dict(spec)
  _check_keys("get_search()", spec, PLAN_KEYS, PLAN_KEYS)
  threshold = spec["threshold"]
  if not (isinstance(threshold, (int, float)) and 0 < threshold <= 1):
    raise ConfigError(f"get_search(): threshold={threshold!r} must be in (0, 1] "
                      "(the fraction of the way from chance to perfect).")
  grid = tuple(dict(g) for g in spec["grid"])
  if not grid or len({sweep.trial_name(g) for g in grid}) != len(grid):
    raise ConfigError("get_search(): the grid must hold at least one trial and "
                      "no two equal ones.")
  searches = []
  for item in spec["searches"]:
    item = dict(item)
    _check_keys("get_search() search", item, SEARCH_KEYS, SEARCH_KEYS[:3])
    one = Search(name=sweep.trial_name(dict(item["overrides"])),
                 overrides=dict(item["overrides"]), start=item["start"],
                 max_length=item["max_length"], multiple=item.get("multiple", 1))
    _check_bounds(one.start, spec["resolution"], one.max_length, one.multiple)
    searches.append(one)
  if not searches or len({s.name for s in searches}) != len(searches):
    raise ConfigError("get_search(): give at least one search and no two with "
                      "the same overrides.")
  key = spec["length_key"]
  if any(key in o for o in [*(x.overrides for x in searches), *grid,
                             overrides or {}]):
    raise ConfigError(f"get_search(): length_key={key!r} is set by the searches, "
                      "the grid or --config; the search sets it alone.")
  return Plan(threshold=float(threshold), resolution=float(spec["resolution"]),
              length_key=key, grid=grid, searches=tuple(searches),
              overrides=dict(overrides or {}))


def _check_keys(where: str, spec: dict, allowed: tuple, required: tuple) -> None:
  unknown, missing = set(spec) - set(allowed), set(required) - set(spec)
  if unknown or missing:
    raise ConfigError(f"{where}: unknown keys {sorted(unknown)}, missing keys "
                      f"{sorted(missing)}; the keys are {', '.join(allowed)}.")


def _plan_json(plan: Plan) -> dict:
  """The plan as JSON, every overrides dict as a list of [key, value] pairs: a
  trial's name follows the order of its overrides, and JSON files are written
  with sorted keys, so a dict would come back in another order and name other
  trials."""
  pairs = lambda d: [[k, v] for k, v in d.items()]
  return json.loads(json.dumps(dict(
      dataclasses.asdict(plan), grid=[pairs(g) for g in plan.grid],
      overrides=pairs(plan.overrides),
      searches=[dict(dataclasses.asdict(one), overrides=pairs(one.overrides))
                for one in plan.searches])))


def read_plan(workdir: str) -> Plan:
  """The Plan stored in DIR/horizon_plan.json (`_plan_json`)."""
  stored = run_files.read_json(os.path.join(workdir, PLAN))
  if stored is None:
    raise ConfigError(f"{workdir} holds no horizon search ({PLAN}); run one with "
                      "an experiment that defines get_search.")
  searches = tuple(Search(**dict(s, overrides=dict(s["overrides"])))
                   for s in stored.pop("searches"))
  return Plan(**dict(stored, grid=tuple(dict(g) for g in stored["grid"]),
                     overrides=dict(stored["overrides"]), searches=searches))


def write_plan(workdir: str, plan: Plan) -> None:
  """Stores the plan; refuses a workdir holding a search of other settings."""
  path = os.path.join(workdir, PLAN)
  stored = run_files.read_json(path)
  if stored is not None and stored != _plan_json(plan):
    differ = sorted(k for k in stored if stored[k] != _plan_json(plan).get(k))
    raise ConfigError(f"--workdir={workdir!r} holds a horizon search of other "
                      f"settings (differing: {', '.join(differ)}). Use a new "
                      "workdir, or the same config to resume.")
  os.makedirs(workdir, exist_ok=True)
  run_files.write_json(path, _plan_json(plan))


def check(path: str, arg: str | None, plan: Plan) -> None:
  """Builds the task, model and training settings of every search at its start
  and its longest length (writes nothing, compiles nothing): a config mistake
  is a ConfigError before anything trains."""
  from seqjax import models, tasks  # pylint: disable=import-outside-toplevel
  module = configs.load_module(path)
  for one in plan.searches:
    for length in (one.start, one.max_length):
      config = sweep.trial_config(module, arg, probe_trials(plan, one, length)[0])
      task = tasks.build(config.task)
      models.build(config.model, task.io)
      configs.train_config(config.train)


# The driver.

def probe_trials(plan: Plan, one: Search, length: int) -> list[dict]:
  """The overrides of the trials of one probe, in grid order."""
  return [{**one.overrides, plan.length_key: length, **item, **plan.overrides}
          for item in plan.grid]


def read_probe(workdir: str, plan: Plan, one: Search, length: int
               ) -> list[tuple[dict, dict | None]]:
  """(overrides, summary or None) of each trial of a probe."""
  return [(o, run_files.read_json(
      os.path.join(workdir, sweep.trial_name(o), "summary.json")))
          for o in probe_trials(plan, one, length)]


def _finished(trials: list) -> bool:
  return all(s and s.get("status") in run_files.FINAL for _, s in trials)


def progress(workdir: str, plan: Plan, one: Search
             ) -> tuple[Walk, dict[int, Verdict]]:
  """The walk of search `one` through the recorded probes, and their verdicts."""
  probes = {}
  while True:
    w = walk(probes, start=one.start, resolution=plan.resolution,
             max_length=one.max_length, multiple=one.multiple)
    trials = [] if w.next is None else read_probe(workdir, plan, one, w.next)
    if w.next is None or not _finished(trials):
      return w, probes
    probes[w.next] = verdict(trials, plan.threshold)


def search(plan: Plan, workdir: str, run_trials: Callable[[list[dict]], None],
           out=sys.stdout, jobs: int = 1,
           cost: Callable[[Search, int], float] | None = None
           ) -> dict[str, Walk]:
  """Runs the plan's searches, each on its own: a search's next probe is ready
  as soon as its last one has ended, and a ready probe starts as soon as fewer
  than `jobs` are running (one search never waits for another's probe): the
  costliest first by `cost(search, length)` (`probe_flops`), so that the long
  chains of costly probes are not left to run alone at the end; without `cost`,
  and between equal costs, in the order they became ready. Each probe is one
  call of `run_trials` with its trials, up to `jobs` calls at once from threads.
  Returns each search's walk. A probe whose trials do not all finish (a crash,
  an interruption, a trial held by another process) stops its search for this
  run; a rerun retries it."""
  ready = []
  for one in plan.searches:
    w, _ = progress(workdir, plan, one)
    if w.next is not None:
      ready.append((one, w.next))
  running = {}
  with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    while ready or running:
      while ready and len(running) < jobs:
        first = max(range(len(ready)), key=lambda i: (
            cost(*ready[i]) if cost else 0, -i))
        one, length = ready.pop(first)
        print(f"[horizon] {one.name}: probe at {length}", file=out, flush=True)
        running[pool.submit(run_trials, probe_trials(plan, one, length))] = (
            one, length)
      done, _ = concurrent.futures.wait(
          running, return_when=concurrent.futures.FIRST_COMPLETED)
      for future in done:
        one, length = running.pop(future)
        future.result()  # a stopped runner's KeyboardInterrupt ends the search
        following = progress(workdir, plan, one)[0].next
        if following == length:
          print(f"[horizon] {one.name}: the probe at {length} did not finish (see "
                "its trials' summary.json); this search stops here, a rerun "
                "retries it.", file=out, flush=True)
        elif following is not None:
          ready.append((one, following))
  return {one.name: progress(workdir, plan, one)[0] for one in plan.searches}


def probe_flops(module, arg: str | None, plan: Plan
                ) -> Callable[[Search, int], float]:
  """`cost(search, length)` for `search`: the analytic training FLOPs of the
  probe's trials at their full step budget (seqjax.flops), from their configs
  alone (nothing is compiled or trained)."""
  from seqjax import experiment, stepping  # pylint: disable=import-outside-toplevel
  known = {}

  def cost(one: Search, length: int) -> float:
    if (one.name, length) not in known:
      config = sweep.trial_config(module, arg, probe_trials(plan, one, length)[0])
      exp = experiment.build(config)
      known[one.name, length] = len(plan.grid) * flops.training(
          config.model.to_dict(), stepping.num_params(exp.state_shapes.params),
          exp.task.io.length,
          exp.train.batch_size, exp.train.steps)
    return known[one.name, length]
  return cost


def sweep_runner(module, arg: str | None, runner: sweep.Runner,
                 group_size: int | None = None) -> Callable[[list[dict]], None]:
  """The seam's default `run_trials`: the trials in groups that share a program
  (`group_size`), through `runner` (a process per group, its `jobs` slots shared
  by every probe running; finished trials are not trained again). Raises
  KeyboardInterrupt once a SIGINT or SIGTERM has stopped the runner's groups."""
  size = group_size or sweep.default_group_size()

  def run_trials(trials: list[dict]) -> None:
    runner.run(sweep.make_groups([sweep.trial(module, arg, o) for o in trials],
                                 size))
    if runner.stopping or runner.counts["interrupted"]:
      raise KeyboardInterrupt("the sweep runner was stopped")
  return run_trials


def run(path: str, arg: str | None, workdir: str, jobs: int = 1,
        shard_spec: str | None = None, group_size: int | None = None,
        out=sys.stdout, overrides: dict | None = None,
        run_trials: Callable[[list[dict]], None] | None = None) -> dict:
  """The horizon search of the experiment `path` (`get_search(arg)`): checks
  the plan, stores it, runs this shard's searches (`--sweep_shard` slices the
  searches), writes the report of every search in DIR. Returns the counts of
  searches `done` and `unfinished` in this shard, and `interrupted` (1 if a
  SIGINT or SIGTERM stopped it: run_trials raised KeyboardInterrupt)."""
  configs.check_positive("--jobs", jobs=jobs)
  module = configs.load_module(path)
  if not hasattr(module, "get_search"):
    raise ConfigError(f"{path} defines no get_search(arg); a horizon search "
                      "needs one.")
  if group_size is not None:
    configs.check_positive("--group_size", group_size=group_size)
  plan = plan_from(module.get_search(arg), overrides)
  mine = dataclasses.replace(
      plan, searches=tuple(sweep.shard(list(plan.searches), shard_spec)))
  check(path, arg, plan)
  run_files.check_writable(workdir)
  write_plan(workdir, plan)
  interrupted, stop = 0, contextlib.nullcontext()
  if run_trials is None:
    runner = sweep.Runner(workdir, jobs, out)
    run_trials, stop = sweep_runner(module, arg, runner, group_size), (
        runner.stopped_by_signals())
  try:
    with stop:
      search(mine, workdir, run_trials, out, jobs,
             cost=probe_flops(module, arg, plan))
  except KeyboardInterrupt:
    interrupted = 1
    print("[horizon] stopped: running trials were checkpointed; rerun the same "
          "command to resume.", file=out, flush=True)
  result = report(workdir)
  print(result["markdown"], file=out)
  done = sum(progress(workdir, plan, s)[0].next is None for s in mine.searches)
  return dict(done=done, unfinished=len(mine.searches) - done,
              interrupted=interrupted)


# The report.

def report(workdir: str) -> dict:
  """Writes DIR/horizon.json, DIR/report.md and the plot from the plan and the
  trial directories; returns {"searches": [...], "markdown": the tables}."""
  from seqjax import plots  # pylint: disable=import-outside-toplevel
  plan = read_plan(workdir)
  rows = [_row(workdir, plan, s) for s in plan.searches]
  tables = _markdown(rows)
  run_files.write_json(os.path.join(workdir, "horizon.json"), dict(
      threshold=plan.threshold, resolution=plan.resolution,
      length_key=plan.length_key, searches=rows))
  plots.horizon_vs_compute(rows, os.path.join(workdir, PLOT))
  lines = [f"# Memory horizon: {os.path.basename(os.path.abspath(workdir))}", "",
           _rule(plan), "", f"![horizon against training compute]({PLOT})", "",
           tables]
  path = os.path.join(workdir, "report.md")
  with open(f"{path}.{os.getpid()}.tmp", "w") as f:  # shards write it too
    f.write("\n".join(lines) + "\n")
  os.replace(f.name, path)
  return dict(searches=rows, markdown=tables)


def _rule(plan: Plan) -> str:
  return (
      f"Solved: the test stream's headline metric, mean over seeds at the "
      f"learning rate chosen on the validation stream, at least {plan.threshold:g} "
      "of the way from chance to perfect. Search: from the start, double the "
      "length while solved, then bisect (geometric midpoint) between the longest "
      "solved and the shortest failed until their ratio is below "
      f"{plan.resolution:g}. Horizon: the longest length solved, with its bracket. "
      f"Lengths are `{plan.length_key}`. Compute: trial-steps trained, seconds in "
      "the training loops (the group's time shared among its trials), the "
      "groups' wall seconds (compilation and evaluation included) and an "
      "analytic estimate of the training FLOPs (seqjax.flops: 6 per parameter "
      "per token plus attention's and the scans' terms), over every probe.")


def _row(workdir: str, plan: Plan, one: Search) -> dict:
  """One search's horizon, bracket, probes and cost."""
  w, verdicts = progress(workdir, plan, one)
  trials = {length: read_probe(workdir, plan, one, length)
            for length in w.path + ((w.next,) if w.next is not None else ())}
  config = next((run_files.read_json(os.path.join(
      workdir, sweep.trial_name(o), "config.json")) for ts in trials.values()
                 for o, s in ts if s), None) or {}
  first = next((s for ts in trials.values() for _, s in ts if s), {})
  if w.next is not None:
    status, text = "unfinished", f"unfinished (next probe: {w.next})"
  elif w.solved is None:
    status, text = "below the start", f"< {one.start} (fails at the start)"
  elif w.failed is None:
    status, text = "at least", f">= {w.solved} (the longest length tried)"
  else:
    status, text = "bracketed", f"{w.solved} (fails at {w.failed})"
  probe = lambda length: (None if length is None else
                          dict(length=length, **_verdict_json(verdicts[length])))
  return dict(
      name=one.name, task=config.get("task", {}).get("name", "?"),
      model=config.get("model", {}).get("name", "?"),
      window=config.get("model", {}).get("window"),
      metric=first.get("metric"), chance=first.get("chance"),
      level=(solved_level(first["chance"], first["mode"], plan.threshold)
             if first else None),
      status=status, horizon=w.solved, text=text, start=one.start,
      max_length=one.max_length, solved=probe(w.solved),
      failed=probe(w.failed), probes=[probe(length) for length in w.path],
      num_params=first.get("num_params"),
      **_cost(workdir, trials))


def _verdict_json(v: Verdict) -> dict:
  return dict(solved=v.solved, score=v.score, low=v.low, high=v.high,
              valid=v.valid, learning_rate=v.learning_rate, tied=list(v.tied),
              seeds=v.seeds, level=v.level)


def _cost(workdir: str, trials: dict) -> dict:
  """What the search's trials cost: trial-steps, training-loop seconds, wall
  seconds (a probe's longest trial: its group's process), training FLOPs."""
  from seqjax import tasks  # pylint: disable=import-outside-toplevel
  steps = train_s = wall_s = flop = 0.0
  for probe in trials.values():
    walls = [0.0]
    for o, s in probe:
      if not s:
        continue
      config = run_files.read_json(
          os.path.join(workdir, sweep.trial_name(o), "config.json"))
      length = tasks.build(ml_collections.ConfigDict(config["task"])).io.length
      steps += s.get("train_steps") or 0
      train_s += s.get("train_time_s") or 0.0
      walls.append(s.get("wall_time_s") or 0.0)
      flop += flops.training(config["model"], s["num_params"], length,
                             config["train"]["batch_size"], s.get("train_steps") or 0)
    wall_s += max(walls)
  return dict(trial_steps=int(steps), train_s=train_s, wall_s=wall_s, flops=flop)


def _markdown(rows: list[dict]) -> str:
  lines = []
  for task in dict.fromkeys(r["task"] for r in rows):
    mine = [r for r in rows if r["task"] == task]
    head = next((r for r in mine if r["metric"]), mine[0])
    about = (f" ({head['metric']}; chance {head['chance']:.4g}; solved at "
             f"{head['level']:.4g} or better)" if head["metric"] else "")
    lines += [f"## {task}{about}", "",
              "| model | horizon | longest solved: score (min-max) | shortest "
              "failed: score (min-max) | probes | trial-steps | train s | wall s "
              "| training FLOPs | params |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in mine:
      lines.append(
          f"| {r['model']} | {r['text']} | {_probe_cell(r['solved'])} | "
          f"{_probe_cell(r['failed'])} | {', '.join(str(p['length']) for p in r['probes'])} "
          f"| {r['trial_steps']} | {r['train_s']:.0f} | {r['wall_s']:.0f} | "
          f"{r['flops']:.2g} | {r['num_params']} |")
    lines.append("")
  return "\n".join(lines)


def _probe_cell(probe: dict | None) -> str:
  if probe is None:
    return "-"
  lr = probe["learning_rate"]
  others = [str(x) for x in probe["tied"] if x != lr]
  tie = f", tied on validation with {', '.join(others)}" if others else ""
  return (f"{probe['length']}: {probe['score']:.3g} ({probe['low']:.3g}-"
          f"{probe['high']:.3g}; lr {lr}{tie})")
