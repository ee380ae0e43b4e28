"""A sweep planned before it is paid for: every trial group compiled at its real
shapes and checked against the device's memory, with the planned trial-steps and
an estimate of the device time.

  python -m benchmarks.dry_run --config=experiments/long_dependency.py \
      --config=experiments/reproduce.py:claim=adding [--group_size=32] \
      [--time_steps=2] [--out=plan.jsonl]

Each `--config` is a sweep (PATH[:ARG], as launch.py's `--mode=sweep` takes
it), split into the groups the sweep would train (`sweep.expand`,
`sweep.make_groups`; `--group_size` as launch.py's, default 32 with an
accelerator, 8 on a CPU). Each distinct program (the trials' `program_key` and
the group's size) is compiled once from shapes alone (`jax.eval_shape`: no
state is allocated), checked by `stepping.check_fits` (arguments + outputs +
temporaries against one device's memory), and, with `--time_steps` > 0 and when
it fits, run for that many steps after one warm-up step. The estimate is the
median step time times the group's train steps, summed over the groups: the
train steps alone (no evaluation, compilation or start-up). Prints one JSON line
per group (`same_as`: the group whose program it shares) and a summary line:
trials, groups, programs, planned trial-steps, what does not compile or fit.
"""

import json
import statistics
import time

from absl import app
from absl import flags
import jax

from benchmarks import group_step
from benchmarks import machine
from seqjax import experiment
from seqjax import stepping
from seqjax import sweep
from seqjax import train
from seqjax.errors import ConfigError

_CONFIGS = flags.DEFINE_multi_string("config", [], "Sweeps: PATH[:ARG].")
_GROUP_SIZE = flags.DEFINE_integer(
    "group_size", 0, "Trials per group; 0: the sweep's default for this machine.")
_TIME_STEPS = flags.DEFINE_integer(
    "time_steps", 2, "Timed steps per program after a warm-up (0: compile only).")
_OUT = flags.DEFINE_string("out", "", "Also write the JSON lines to this file.")


def time_group(compiled, exp, n: int, steps: int) -> float:
  """Median seconds of `steps` group steps of `compiled` after one warm-up."""
  state, alive, batch, hp, keys, started = group_step.group_args(exp, n)
  times = []
  for _ in range(steps + 1):
    t0 = time.perf_counter()
    state, alive, metrics = compiled(state, alive, batch, hp, keys, started)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
  return statistics.median(times[1:])


def plan_program(exp, n: int, time_steps: int) -> dict:
  """Compiles `exp`'s group step for `n` trials from shapes, checks it fits,
  and times it; what does not compile or fit is reported, not raised."""
  abstract = jax.eval_shape(lambda: group_step.group_args(exp, n))
  t0 = time.perf_counter()
  try:
    compiled = stepping.make_group_step(exp).lower(*abstract).compile()
  except Exception as e:  # pylint: disable=broad-except
    # What the planner is for: a group that does not compile is a finding.
    return dict(compiles=False, error=f"{type(e).__name__}: {e}"[:500])
  mem = compiled.memory_analysis()
  need = None if mem is None else (
      mem.argument_size_in_bytes + mem.output_size_in_bytes
      + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
  row = dict(compiles=True, compile_s=round(time.perf_counter() - t0, 2),
             temp_mb=stepping.compiled_temp_mb(compiled),
             need_gib=None if need is None else round(need / 2**30, 2), fits=True)
  try:
    stepping.check_fits(compiled, exp, n)
  except ConfigError as e:
    return dict(row, fits=False, error=str(e))
  if time_steps:
    row["step_s"] = time_group(compiled, exp, n, time_steps)
  return row


def plan(path: str, arg: str | None, size: int, time_steps: int):
  """One row per group of the sweep `path:arg`; yields them as they are done."""
  programs = {}
  for i, group in enumerate(sweep.make_groups(sweep.expand(path, arg), size)):
    cfgs = [t.config for t in group]  # each trial's config, built once by expand
    exp = experiment.build(cfgs[0])
    key = (train.program_key(cfgs[0]), len(group))
    row = dict(sweep=f"{path}:{arg}" if arg else path, group=i,
               trials=len(group), model=cfgs[0].model.name,
               length=exp.task.io.length, batch=exp.train.batch_size,
               trial_steps=sum(c.train.steps for c in cfgs))
    if key in programs:
      row.update(programs[key], same_as=programs[key]["group"])
    else:
      row.update(plan_program(exp, len(group), time_steps))
      programs[key] = dict(row)
    if "step_s" in row:
      row["estimate_s"] = row["step_s"] * max(c.train.steps for c in cfgs)
    yield row


def summary(rows: list[dict]) -> dict:
  """Totals over `rows`: trials, groups, programs, trial-steps, the estimate
  (null when a group was not timed) and the groups that fail."""
  timed = all("estimate_s" in r for r in rows)
  return dict(
      summary=True, trials=sum(r["trials"] for r in rows), groups=len(rows),
      programs=sum("same_as" not in r for r in rows),
      trial_steps=sum(r["trial_steps"] for r in rows),
      compile_s=round(sum(r.get("compile_s", 0) for r in rows
                          if "same_as" not in r), 1),
      estimate_s=round(sum(r["estimate_s"] for r in rows), 1) if timed else None,
      not_compiled=[(r["sweep"], r["group"]) for r in rows if not r["compiles"]],
      not_fitting=[(r["sweep"], r["group"]) for r in rows
                   if r["compiles"] and not r["fits"]],
      device=jax.devices()[0].device_kind,
      device_memory_gib=round(stepping.device_memory_bytes() / 2**30, 1))


def main(argv):
  del argv
  machine.setup()
  machine.single_threaded_eigen()  # group steps run here
  if not _CONFIGS.value:
    raise app.UsageError("Give at least one --config=PATH[:ARG].")
  size = _GROUP_SIZE.value or sweep.default_group_size()
  rows = []
  out = open(_OUT.value, "w") if _OUT.value else None  # pylint: disable=consider-using-with
  for spec in _CONFIGS.value:
    path, _, arg = spec.partition(":")
    for row in plan(path, arg or None, size, _TIME_STEPS.value):
      rows.append(row)
      if out:
        out.write(json.dumps(row) + "\n")
        out.flush()
      print(json.dumps(row), flush=True)
  total = dict(summary(rows), group_size=size, machine=machine.describe())
  print(json.dumps(total), flush=True)
  if out:
    out.write(json.dumps(total) + "\n")
    out.close()


if __name__ == "__main__":
  app.run(main)
