"""The report of a sweep, built from its trial directories alone:
DIR/results.jsonl (a row per trial), DIR/report.json, DIR/report.md and plots.

For each task, the headline metric against the sweep's `SWEEP_AXIS` (never
guessed), a line per model and setting: at each point the learning rate is
chosen on the validation stream and the test stream's metric is reported (mean,
min and max over seeds), ranked by `seqjax.scores` in the mode each run
recorded, beside the chance level, the task's baselines and what training cost
per trial; then the extra test sets, and the trials without a result with their
group's log. docs/architecture.md ("Sweeps, trial groups and reports") tells
the rules in full.
"""

import collections
import math
import os
import re

import numpy as onp

from seqjax import horizon
from seqjax import run_files
from seqjax import scores
from seqjax import strict_json
from seqjax import sweep
from seqjax.errors import ConfigError

NOT_SETTING = ("train.", "mesh.", "arg.seed", "arg.model")
RESULT_KEYS = ("metric", "mode", "chance", "baselines", "final", "best", "test",
               "num_params", "steps_per_s", "wall_time_s", "peak_memory_mb",
               "step_temp_mb", "step", "group_size")


def results(workdir: str) -> list[dict]:
  """One row per trial directory in DIR (one with a trial.json), by name: its
  overrides, axis, task and model, status (`sweep.outcome`), the summary's
  `RESULT_KEYS` and extra test sets; where it did not finish, why and the log
  of its group (relative to DIR)."""
  rows = []
  for name in sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []:
    trial_dir = os.path.join(workdir, name)
    trial = run_files.read_json(os.path.join(trial_dir, sweep.TRIAL_FILE))
    if trial is None:
      continue
    config = run_files.read_json(os.path.join(trial_dir, "config.json")) or {}
    status, summary = sweep.outcome(trial_dir)
    row = dict(trial=name, overrides=trial["overrides"], axis=trial.get("axis"),
               task=config.get("task", {}).get("name", "?"),
               model=config.get("model", {}).get("name", "?"), status=status,
               **{k: summary.get(k) for k in RESULT_KEYS})
    extra = {k: v for k, v in summary.items() if k.startswith("test_")}
    if extra:  # the task's extra test sets (`eval_sets`), e.g. test_len1024
      row["extra_tests"] = extra
    if status == "held":
      row["error"] = f"held by {summary['holder']}"
    elif status == "interrupted":
      row.update(error=f"interrupted at step {summary.get('step')}; rerun the "
                 "sweep to resume", log=trial.get("group_log"))
    elif status == "failed":
      row.update(error=summary.get("error") or "no final summary.json after its "
                 "group ended", log=trial.get("group_log"))
    rows.append(row)
  return rows


def _setting(overrides: dict, length_key: str | None) -> tuple:
  """The overrides that make a point besides the model and the length: every
  one that is not a training setting or the seed, as sorted (key, value) pairs."""
  return tuple(sorted((k, v) for k, v in overrides.items()
                      if k != length_key and not k.startswith(NOT_SETTING)))


def _label(model: str, setting: tuple) -> str:
  """The model, with the point's other settings: `lstm (width=64)`."""
  if not setting:
    return model
  named = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in setting)
  return f"{model} ({named})"


def aggregate(workdir: str, rows: list[dict] | None = None) -> dict:
  """{task: {"metric", "mode", "chance", "baselines", "length_key" (the axis),
  "points": [...]}} of the finished trials of `rows` (default: `results`)."""
  by_task = collections.defaultdict(list)
  for r in results(workdir) if rows is None else rows:
    if r["status"] in run_files.FINAL and r.get("test"):
      by_task[r["task"]].append(r)
  report = {}
  for task, trials in by_task.items():
    key = next((r["axis"] for r in trials if r.get("axis")), None)
    first = trials[0]
    metric, mode = first["metric"], first["mode"]
    settings = [_setting(r["overrides"], key) for r in trials]
    # An override with one value across the task's trials (the sweep's
    # `arg.task`, say) distinguishes nothing: left out of the labels.
    constant = set.intersection(*(set(s) for s in settings))
    points = collections.defaultdict(list)
    for r, setting in zip(trials, settings):
      points[(r["model"], r["overrides"].get(key), setting)].append(r)
    table = []
    for (model, length, setting), members in sorted(points.items(),
                                                    key=_point_order):
      by_lr = collections.defaultdict(list)
      for t in members:
        by_lr[t["overrides"].get("train.learning_rate", "default")].append(t)
      valid = {lr: _mean(_score(t, t["final"], metric, mode) for t in by_lr[lr])
               for lr in sorted(by_lr, key=_value_order)}
      # Ties go to the latest item, so ranking the rates from the largest down
      # chooses the smallest of tied rates (the first a sweep tries), said so.
      pick = scores.best(reversed(valid), valid.get, mode)
      tied = [lr for lr, v in valid.items() if v == valid[pick]]
      chosen = by_lr[pick]
      test = [_score(t, t["test"], metric, mode) for t in chosen]
      table.append(dict(
          model=model, length=length, setting=dict(setting),
          label=_label(model, tuple(kv for kv in setting if kv not in constant)),
          learning_rate=pick, tied_learning_rates=tied if len(tied) > 1 else [],
          valid=valid[pick], test_mean=_mean(test), test_min=min(test),
          test_max=max(test), seeds=len(chosen),
          diverged=sum(t["status"] == "diverged" for t in chosen),
          step_ms=_mean(1e3 / t["steps_per_s"] / _group(t) for t in chosen
                        if t.get("steps_per_s")),
          peak_memory_mb=_mean(t["peak_memory_mb"] for t in chosen
                               if t.get("peak_memory_mb")),
          step_temp_mb=_mean(t["step_temp_mb"] / _group(t) for t in chosen
                             if t.get("step_temp_mb") is not None),
          group_size=max(_group(t) for t in chosen),
          num_params=chosen[0].get("num_params"),
          extra_tests=_extra_tests(chosen, metric, mode)))
    report[task] = dict(metric=metric, mode=mode, chance=first["chance"],
                        baselines=first.get("baselines") or {}, length_key=key,
                        points=table)
  return report


def _extra_tests(trials: list, metric: str, mode: str) -> dict:
  """{set name: {"mean", "min", "max"}} of `metric` on each extra test set any
  of `trials` recorded, in natural order (test_len128 before test_len1024). A
  trial that diverged, or lacks a set the others have, scores the worst value."""
  names = sorted({n for t in trials for n in t.get("extra_tests") or {}},
                 key=_natural)
  out = {}
  for name in names:
    values = [_score(t, (t.get("extra_tests") or {}).get(name), metric, mode)
              for t in trials]
    out[name] = dict(mean=_mean(values), min=min(values), max=max(values))
  return out


def _natural(name: str) -> list:
  return [(0, int(t), "") if t.isdigit() else (1, 0, t)
          for t in re.split(r"(\d+)", name) if t]


def _group(trial: dict) -> int:
  """Trials that trained together in one program with this one (1: alone)."""
  return trial.get("group_size") or 1


def _point_order(item) -> tuple:
  """By model and setting, then the axis's values (`_value_order`)."""
  (model, length, setting), _ = item
  return (model, str(setting), *_value_order(length))


def _value_order(value) -> tuple:
  """Numbers in order, then other values by their text."""
  number = _is_number(value)
  return (not number, value if number else 0, "" if number else str(value))


def _is_number(value) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _mean(xs) -> float:
  xs = [x for x in xs if x is not None]
  return float(onp.mean(xs)) if xs else float("nan")


def _score(trial: dict, metrics: dict | None, metric: str, mode: str) -> float:
  """`metric` of `metrics`, one split's of `trial` (`scores.score`: the worst
  for a diverged trial, or a value missing or not finite)."""
  completed = trial["status"] == "completed"
  return scores.score((metrics or {}).get(metric) if completed else None, mode)


def write(workdir: str) -> dict:
  """Writes DIR/report.json, DIR/report.md and the plots; returns the report.
  A horizon search's directory (it holds its plan) gets `horizon.report`."""
  if os.path.exists(os.path.join(workdir, horizon.PLAN)):
    return horizon.report(workdir)
  from seqjax import plots  # pylint: disable=import-outside-toplevel
  rows = results(workdir)
  if not rows:
    raise ConfigError(
        f"--workdir={workdir!r} holds no sweep (no trial directory with "
        f"{sweep.TRIAL_FILE}); --mode=report reads the workdir of a --mode=sweep, "
        "--mode=diagnose a single run's.")
  run_files.write_text(os.path.join(workdir, "results.jsonl"),
                       "".join(strict_json.dumps(r) + "\n" for r in rows))
  report = aggregate(workdir, rows)
  run_files.write_json(os.path.join(workdir, "report.json"), report)
  lines = [f"# Sweep report: {os.path.basename(os.path.abspath(workdir))}", "",
           "Learning rate chosen per point on the validation stream; the test "
           "stream's metric reported (mean, min-max over seeds). Step time and "
           "step temp memory are per trial, amortised over the trial group "
           "(the group's divided by its size, column `group`).", ""]
  for task, data in report.items():
    metric, chance = data["metric"], data["chance"]
    against = f" against {data['length_key']}" if data["length_key"] else ""
    lines += [f"## {task}: {metric} ({'higher' if data['mode'] == 'max' else 'lower'}"
              f" is better; chance {chance:.4g}){against}", ""]
    lines += [f"- baseline {name}: {b['metric']} {b['value']:.4g} ({b['what']})"
              for name, b in data["baselines"].items()]
    lines += [""] + _plots(workdir, task, data, plots) + [
              "", "| model | length | lr | valid | test mean | test min-max | seeds "
              "| diverged | group | step (ms) | step temp (MB) | peak memory (MB) | params |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in data["points"]:
      lines.append(
          f"| {p['label']} | {_length_cell(p)} | "
          f"{p['learning_rate']}{_tie(p)} | "
          f"{p['valid']:.4g} | {p['test_mean']:.4g} | {p['test_min']:.4g}-"
          f"{p['test_max']:.4g} | {p['seeds']} | {p['diverged']} | {p['group_size']} | "
          f"{p['step_ms']:.3g} | {p['step_temp_mb']:.4g} | {p['peak_memory_mb']:.4g} | "
          f"{p['num_params']} |")
    lines.append("")
    lines += _extra_lines(workdir, task, data, plots)
  unfinished = [r for r in rows if r["status"] not in run_files.FINAL]
  lines += ["## Trials without a result", ""] * bool(unfinished) + [
      f"- {r['trial']}: {r['status']}, {r['error']}" +
      (f" (log: {r['log']})" if r.get("log") else "") for r in unfinished]
  run_files.write_text(os.path.join(workdir, "report.md"), "\n".join(lines))
  return report


def _extra_lines(workdir: str, task: str, data: dict, plots) -> list[str]:
  """The table (and plot) of the metric on the task's extra test sets, if any."""
  names = sorted({n for p in data["points"] for n in p["extra_tests"]},
                 key=_natural)
  if not names:
    return []
  png = f"{task}_extra_tests.png"
  plots.metric_vs_test_set(data, names, os.path.join(workdir, png), title=task)
  lines = [f"### {task}: {data['metric']} on the extra test sets (mean, min-max "
           "over seeds; learning rate as above)", "", f"![extra test sets]({png})",
           "", "| model | length | test (training length) | " + " | ".join(names) + " |",
           "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
  for p in data["points"]:
    cells = [f"{p['test_mean']:.4g} ({p['test_min']:.4g}-{p['test_max']:.4g})"]
    for n in names:
      e = p["extra_tests"].get(n)
      cells.append("not run" if e is None else
                   f"{e['mean']:.4g} ({e['min']:.4g}-{e['max']:.4g})")
    lines.append(f"| {p['label']} | {_length_cell(p)} | " + " | ".join(cells) + " |")
  return lines + [""]


def _length_cell(point: dict) -> str:
  return "-" if point["length"] is None else str(point["length"])


def _tie(point: dict) -> str:
  """' (tied on validation with ...; the smallest chosen)' where learning rates tied."""
  others = [str(x) for x in point["tied_learning_rates"] if x != point["learning_rate"]]
  return (f" (tied on validation with {', '.join(others)}; the smallest chosen)"
          if others else "")


def _plots(workdir: str, task: str, data: dict, plots) -> list[str]:
  """Draws the plots of the points with a numeric length; returns the lines of
  report.md that show them and say what was left out."""
  if not data["length_key"]:
    return ["No line plot: the experiment names no sweep axis (`SWEEP_AXIS` "
            "beside its `get_sweep`); the table holds every point."]
  plotted = [p for p in data["points"] if _is_number(p["length"])]
  skipped = sorted({str(p["length"]) for p in data["points"]} -
                   {str(p["length"]) for p in plotted})
  if not plotted:
    return [f"No line plot: no value of the sweep axis {data['length_key']} is "
            "a number; the table holds every point."]
  data = dict(data, points=plotted)
  png, cost = f"{task}_{data['metric']}.png", f"{task}_cost.png"
  plots.metric_vs_length(data, os.path.join(workdir, png), title=task)
  plots.cost_vs_length(data, os.path.join(workdir, cost), title=task)
  out = [f"![{data['metric']}]({png})", f"![cost]({cost})"]
  if skipped:
    out.append(f"Not plotted (length not a number): {', '.join(skipped)}.")
  return out
