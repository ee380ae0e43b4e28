"""The report of a sweep: DIR/report.md, DIR/report.json and plots.

For each task, the headline metric against dependency length with one line per
architecture. At each point the learning rate is chosen on the validation
stream (the `final` eval metrics of summary.json, averaged over seeds) and the
number reported is the test stream's (`test`) for that learning rate: mean,
min and max over seeds. The chance level is drawn. Beside it, what training
cost: step time (1 / steps per second) and peak memory.

The dependency length of a trial is its first numeric override that is not a
training setting (`task.delay`, `arg.length`, ...).
"""

import collections
import math
import os

import numpy as onp

from seqjax import sweep
from seqjax import workdir as workdir_lib

NOT_LENGTH = ("train.", "mesh.", "arg.seed", "arg.quick")


def _length_key(overrides: dict) -> str | None:
  for key, value in overrides.items():
    if (isinstance(value, (int, float)) and not isinstance(value, bool)
        and not key.startswith(NOT_LENGTH)):
      return key
  return None


def _arch(trial_dir: str) -> tuple[str, str]:
  config = workdir_lib.read_json(os.path.join(trial_dir, "config.json")) or {}
  return (config.get("task", {}).get("name", "?"),
          config.get("model", {}).get("name", "?"))


def aggregate(workdir: str) -> dict:
  """{task: {"metric", "mode", "chance", "length_key", "points": [...]}}."""
  groups = collections.defaultdict(lambda: collections.defaultdict(list))
  meta = {}
  for r in sweep.read_results(workdir):
    if r["status"] not in sweep.FINAL or not r.get("test"):
      continue
    key = _length_key(r["overrides"])
    task, model = _arch(os.path.join(workdir, r["trial"]))
    meta.setdefault(task, dict(metric=r["metric"], chance=r["chance"],
                               length_key=key, mode=r.get("mode")))
    groups[task][(model, r["overrides"].get(key))].append(r)
  report = {}
  for task, points in groups.items():
    metric = meta[task]["metric"]
    # The task's own `mode`, from its summary; results written before summaries
    # carried it fall back to the metric's name.
    mode = meta[task]["mode"] or ("min" if metric in ("loss", "mse") else "max")
    rows = []
    for (model, length), trials in sorted(points.items(),
                                          key=lambda kv: (kv[0][0], kv[0][1] or 0)):
      by_lr = collections.defaultdict(list)
      for t in trials:
        lr = t["overrides"].get("train.learning_rate", "default")
        by_lr[lr].append(t)
      valid = {lr: _mean(t["final"][metric] if t["status"] == "completed"
                         else _worst(mode) for t in ts)
               for lr, ts in by_lr.items()}
      pick = (max if mode == "max" else min)(valid, key=valid.get)
      chosen = by_lr[pick]
      test = [t["test"][metric] if t["status"] == "completed" else _worst(mode)
              for t in chosen]
      rows.append(dict(
          model=model, length=length, learning_rate=pick,
          valid=valid[pick], test_mean=_mean(test), test_min=min(test),
          test_max=max(test), seeds=len(chosen),
          diverged=sum(t["status"] == "diverged" for t in chosen),
          step_ms=_mean(1e3 / t["steps_per_s"] for t in chosen
                        if t.get("steps_per_s")),
          peak_memory_mb=_mean(t["peak_memory_mb"] for t in chosen
                               if t.get("peak_memory_mb")),
          step_temp_mb=_mean(t.get("step_temp_mb") for t in chosen),
          num_params=chosen[0].get("num_params")))
    report[task] = dict(meta[task], mode=mode, points=rows)
  return report


def _mean(xs) -> float:
  xs = [x for x in xs if x is not None]
  return float(onp.mean(xs)) if xs else float("nan")


def _worst(mode: str) -> float:
  """The score of a diverged trial: accuracy 0, or an infinite loss."""
  return 0.0 if mode == "max" else math.inf


def write(workdir: str) -> dict:
  """Writes DIR/report.json, DIR/report.md and the plots; returns the report."""
  from seqjax import plots  # pylint: disable=import-outside-toplevel
  report = aggregate(workdir)
  workdir_lib.write_json(os.path.join(workdir, "report.json"), report)
  lines = [f"# Sweep report: {os.path.basename(os.path.abspath(workdir))}", "",
           "Learning rate chosen per point on the validation stream; the test "
           "stream's metric reported (mean, min-max over seeds).", ""]
  for task, data in report.items():
    metric, chance = data["metric"], data["chance"]
    png = f"{task}_{metric}.png"
    cost = f"{task}_cost.png"
    if data["length_key"]:  # plots against length; a sweep without one: table
      plots.metric_vs_length(data, os.path.join(workdir, png), title=task)
      plots.cost_vs_length(data, os.path.join(workdir, cost), title=task)
      lines += [f"## {task}: {metric} (chance {chance:.4g}) against "
                f"{data['length_key']}", "", f"![{metric}]({png})",
                f"![cost]({cost})", ""]
    else:
      lines += [f"## {task}: {metric} (chance {chance:.4g})", ""]
    lines += ["| model | length | lr | valid | test mean | test min-max | seeds "
              "| diverged | step (ms) | step temp (MB) | peak memory (MB) | params |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in data["points"]:
      lines.append(
          f"| {p['model']} | {'-' if p['length'] is None else p['length']} | "
          f"{p['learning_rate']} | "
          f"{p['valid']:.4g} | {p['test_mean']:.4g} | {p['test_min']:.4g}-"
          f"{p['test_max']:.4g} | {p['seeds']} | {p['diverged']} | "
          f"{p['step_ms']:.3g} | {p['step_temp_mb']:.4g} | {p['peak_memory_mb']:.4g} | "
          f"{p['num_params']} |")
    lines.append("")
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write("\n".join(lines))
  return report
