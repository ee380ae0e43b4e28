"""Trial-steps per second of a sweep: trial groups against a process per trial.

Runs one fixed sub-grid of the quick long-dependency sweep three ways, each in
a fresh directory with `--jobs` groups at once:

  per_trial  --group_size=1 and no compilation cache: a process, a compile, a
             checkpoint stream per trial (the sweep runner before trial groups);
  grouped    the default group size: one process and one program per group;
  rerun      grouped again in a new directory that shares the first one's JAX
             compilation cache (what a rerun or a second sweep pays).

  python -m benchmarks.sweep_throughput [--steps=600] [--jobs=2]

Prints one JSON line per way: wall time, trial-steps per second, and the mean
compile time of a train step (from each trial's summary.json).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from benchmarks import machine
from seqjax import report
from seqjax import run_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STEPS = flags.DEFINE_integer("steps", 600, "Training steps per trial.")
_JOBS = flags.DEFINE_integer("jobs", 2, "Groups (or trials) run at once.")
_MODELS = flags.DEFINE_list("models", ["lstm", "transformer"], "Architectures.")
_LENGTH = flags.DEFINE_integer("length", 16, "Copy-memory delay.")
_LRS = flags.DEFINE_list("learning_rates", ["1e-3", "3e-3", "1e-2"],
                         "The learning-rate grid (x 2 seeds).")


def sweep_file(directory: str) -> str:
  """An experiment whose grid is the sub-grid: models x learning rates x 2 seeds."""
  path = os.path.join(directory, "subgrid.py")
  with open(path, "w") as f:
    f.write(f'''
import sys
sys.path.insert(0, {os.path.join(ROOT, "experiments")!r})
import long_dependency
from seqjax import sweep

def get_config(arg=None):
  config = long_dependency.get_config(arg)
  config.train.steps = {_STEPS.value}
  config.train.warmup_steps = min(config.train.warmup_steps, {_STEPS.value} // 10)
  return config

SWEEP_AXIS = "arg.length"

def get_sweep(arg=None):
  return sweep.product(sweep.values("arg.model", {_MODELS.value!r}),
                       sweep.values("arg.length", [{_LENGTH.value}]),
                       sweep.values("train.learning_rate", {[float(x) for x in _LRS.value]!r}),
                       sweep.values("train.seed", [0, 1]))
''')
  return path


def run(path: str, workdir: str, *extra: str) -> dict:
  t0 = time.time()
  done = subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"),
                         f"--config={path}:task=copy_memory,quick", "--mode=sweep",
                         f"--workdir={workdir}", f"--jobs={_JOBS.value}", *extra],
                        check=False, cwd=ROOT, capture_output=True, text=True)
  if done.returncode:
    raise RuntimeError(f"the sweep failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
  wall = time.time() - t0
  results = report.results(workdir)
  summaries = [run_files.read_json(os.path.join(workdir, r["trial"],
                                                  "summary.json")) for r in results]
  steps = sum(s["step"] for s in summaries)
  return dict(trials=len(results), trial_steps=steps, wall_s=round(wall, 1),
              trial_steps_per_s=round(steps / wall, 1),
              compile_s_mean=round(sum(s["compile_s"] for s in summaries)
                                   / len(summaries), 2),
              statuses=sorted({r["status"] for r in results}))


def main(argv):
  del argv
  machine.setup()
  directory = tempfile.mkdtemp(prefix="sweep_throughput_")
  try:
    path = sweep_file(directory)
    cache = os.path.join(directory, "cache")
    for name, extra in (("per_trial", ["--group_size=1"]), ("grouped", [])):
      # per_trial is the runner before trial groups: no compilation cache either.
      os.environ["JAX_COMPILATION_CACHE_DIR"] = "" if name == "per_trial" else cache
      machine.emit(dict(way=name, **run(path, os.path.join(directory, name), *extra)))
    machine.emit(dict(way="rerun", **run(path, os.path.join(directory, "rerun"))))
  finally:
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
