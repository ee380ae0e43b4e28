"""Sweeps: a grid of trials beside an experiment's config, run resumably.

An experiment file may define `get_sweep(arg)` returning a list of override
dicts, built with `values`, `product`, `zipped` and `chain`:

  def get_sweep(arg):
    return sweep.product(sweep.values("arg.model", ["lstm", "gru"]),
                         sweep.values("train.learning_rate", [1e-3, 3e-3]),
                         sweep.values("train.seed", [0, 1]))

Override keys: `arg.NAME` sets NAME in `get_config`'s argument (so the
experiment itself builds, say, the model section of each architecture);
`SECTION.KEY` sets a config value afterwards. Each trial runs in its own process
(a crash of one never stops the others) in DIR/<trial name>/, with the files of
a single run. Rerunning the command skips completed (and diverged) trials,
resumes interrupted ones from their checkpoints and retries failed ones; a lock
file per trial keeps two runners off the same trial. DIR/results.jsonl holds one
line per trial.
"""

import concurrent.futures
import fcntl
import importlib.util
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import ml_collections

from seqjax import configs
from seqjax import workdir as workdir_lib
from seqjax.errors import ConfigError

FINAL = ("completed", "diverged")
RESULT_KEYS = ("metric", "mode", "chance", "final", "best", "test", "num_params",
               "steps_per_s", "wall_time_s", "peak_memory_mb", "step_temp_mb",
               "step")


def values(key: str, vals) -> list[dict]:
  return [{key: v} for v in vals]


def product(*lists: list[dict]) -> list[dict]:
  """Every combination, the first list varying slowest."""
  return [dict(itertools.chain.from_iterable(d.items() for d in combo))
          for combo in itertools.product(*lists)]


def zipped(*lists: list[dict]) -> list[dict]:
  if len({len(x) for x in lists}) > 1:
    raise ConfigError(f"sweep.zipped needs lists of one length, got "
                      f"{[len(x) for x in lists]}.")
  return [dict(itertools.chain.from_iterable(d.items() for d in group))
          for group in zip(*lists)]


def chain(*lists: list[dict]) -> list[dict]:
  return [d for x in lists for d in x]


def trial_name(overrides: dict) -> str:
  """A readable, stable directory name: `model=lstm,task.delay=20,...`."""
  parts = []
  for key, value in overrides.items():
    key = key[len("arg."):] if key.startswith("arg.") else key
    parts.append(f"{key}={value!r}" if isinstance(value, str) and not value
                 else f"{key}={value}")
  return re.sub(r"[^A-Za-z0-9._=,+-]", "_", ",".join(parts))


def load_experiment(path: str):
  if not os.path.isfile(path):
    raise ConfigError(f"--config file {path!r} does not exist.")
  spec = importlib.util.spec_from_file_location("_experiment", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def trial_config(module, arg: str | None, overrides: dict
                 ) -> ml_collections.ConfigDict:
  """The config of one trial: `get_config` with the `arg.*` overrides merged into
  its argument, then the dotted overrides applied to known keys only."""
  args = dict(item.split("=", 1) if "=" in item else (item, "true")
              for item in filter(None, (arg or "").split(",")))
  args.update({k[len("arg."):]: str(v) for k, v in overrides.items()
               if k.startswith("arg.")})
  config = module.get_config(",".join(f"{k}={v}" for k, v in args.items()))
  for key, value in overrides.items():
    if key.startswith("arg."):
      continue
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      if part not in node:
        raise ConfigError(f"Sweep override {key!r}: the config has no section "
                          f"{part!r}.")
      node = node[part]
    if leaf not in node:
      raise ConfigError(f"Sweep override {key!r} names no config key; keys under "
                        f"{'.'.join(parents)}: {', '.join(sorted(node.keys()))}.")
    node[leaf] = value
  return config


def expand(path: str, arg: str | None) -> list[tuple[str, dict]]:
  """(name, overrides) of every trial, each checked by building its config."""
  module = load_experiment(path)
  if not hasattr(module, "get_sweep"):
    raise ConfigError(f"{path} defines no get_sweep(arg); --mode=sweep needs one.")
  trials = [(trial_name(o), o) for o in module.get_sweep(arg)]
  names = [n for n, _ in trials]
  if len(set(names)) != len(names):
    raise ConfigError("Two trials of the sweep have the same overrides.")
  from seqjax import models, tasks  # pylint: disable=import-outside-toplevel
  for _, overrides in trials:
    config = trial_config(module, arg, overrides)
    task = tasks.build(config.task)
    models.build(config.model, task.io)
    configs.train_config(config.train)
  return trials


def shard(trials: list, spec: str | None) -> list:
  """The I-th of N disjoint slices (`spec` "I/N", I from 0), by index mod N."""
  if not spec:
    return trials
  match = re.fullmatch(r"(\d+)/(\d+)", spec)
  if not match or not int(match.group(1)) < int(match.group(2)):
    raise ConfigError(f"--sweep_shard={spec!r} must be I/N with 0 <= I < N, "
                      "e.g. 0/4.")
  i, n = int(match.group(1)), int(match.group(2))
  return trials[i::n]


class TrialLock:
  """DIR/<trial>/.lock, created exclusively; a lock whose process is gone (same
  host) is stale and taken over."""

  def __init__(self, trial_dir: str):
    self.path = os.path.join(trial_dir, ".lock")
    self.held = False

  def acquire(self) -> bool:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      except FileExistsError:
        if not self._stale():
          return False
        os.remove(self.path)
        continue
      with os.fdopen(fd, "w") as f:
        f.write(f"{socket.gethostname()} {os.getpid()}\n")
      self.held = True
      return True
    return False

  def _stale(self) -> bool:
    try:
      host, pid = open(self.path).read().split()
    except (OSError, ValueError):
      return False
    if host != socket.gethostname():
      return False
    try:
      os.kill(int(pid), 0)
    except ProcessLookupError:
      return True
    except PermissionError:
      return False
    return False

  def release(self) -> None:
    if self.held:
      os.remove(self.path)
      self.held = False


def record(workdir: str, name: str, overrides: dict, status: str,
           summary: dict | None, error: str | None = None) -> None:
  """Puts the trial's line in DIR/results.jsonl: appended if new, replaced in an
  atomic rewrite if it changed (a failed trial that later completed), never
  duplicated. Serialised across processes by a lock on results.jsonl.lock."""
  line = {"trial": name, "overrides": overrides, "status": status}
  line.update({k: (summary or {}).get(k) for k in RESULT_KEYS})
  if error:
    line["error"] = error
  path = os.path.join(workdir, "results.jsonl")
  with open(path + ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    lines = read_results(workdir)
    old = [r for r in lines if r["trial"] == name]
    if old == [line]:
      return
    if not old:
      with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")
      return
    lines = [line if r["trial"] == name else r for r in lines]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in lines)
    os.replace(tmp, path)


def read_results(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "results.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _slots(jobs: int) -> list[dict]:
  """What each of `jobs` concurrent trials gets: a disjoint set of CPU cores
  (sched_setaffinity), and a disjoint slice of CUDA_VISIBLE_DEVICES if set."""
  cores = sorted(os.sched_getaffinity(0))
  gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
  slots = []
  for i in range(jobs):
    slot = {"cores": cores[i * len(cores) // jobs:(i + 1) * len(cores) // jobs]
            or cores}
    if gpus:
      slot["gpus"] = gpus[i * len(gpus) // jobs:(i + 1) * len(gpus) // jobs] or gpus
    slots.append(slot)
  return slots


def _run_trial(path, arg, overrides, trial_dir, slot) -> tuple[int, str]:
  env = dict(os.environ)
  if "gpus" in slot:
    env["CUDA_VISIBLE_DEVICES"] = ",".join(slot["gpus"])
  env["XLA_FLAGS"] = " ".join(filter(None, [
      env.get("XLA_FLAGS", ""), f"--xla_cpu_multi_thread_eigen={'true' if len(slot['cores']) > 1 else 'false'}"]))
  job = json.dumps(dict(path=os.path.abspath(path), arg=arg, overrides=overrides,
                        workdir=trial_dir, cores=slot["cores"]))
  with open(os.path.join(trial_dir, "log.txt"), "a") as log:
    proc = subprocess.run(
        [sys.executable, "-m", "seqjax.sweep", job], env=env, stdout=log,
        stderr=subprocess.STDOUT, check=False)
  with open(os.path.join(trial_dir, "log.txt")) as log:
    tail = log.read()[-2000:]
  return proc.returncode, tail


def run(path: str, arg: str | None, workdir: str, jobs: int = 1,
        shard_spec: str | None = None, out=sys.stdout) -> dict:
  """Runs this shard's trials, `jobs` at a time; returns the counts by status."""
  configs.check_positive("--jobs", jobs=jobs)
  trials = shard(expand(path, arg), shard_spec)
  os.makedirs(workdir, exist_ok=True)
  counts = {"done": 0, "running": 0, "failed": 0, "skipped": 0}
  total, started, durations = len(trials), time.time(), []
  guard = threading.Lock()
  free = list(_slots(jobs))

  def show():
    left = total - counts["done"] - counts["failed"] - counts["skipped"]
    eta = ""
    if durations:  # mean trial time, for what is left, `jobs` at a time
      mean = sum(durations) / len(durations)
      eta = f", about {mean * left / jobs:.0f} s left"
    print(f"[sweep] {counts['done']} done, {counts['running']} running, "
          f"{counts['failed']} failed, {counts['skipped']} held by another runner, "
          f"of {total}{eta} ({time.time() - started:.0f} s)", file=out, flush=True)

  def one(name, overrides):
    trial_dir = os.path.join(workdir, name)
    summary = workdir_lib.read_json(os.path.join(trial_dir, "summary.json"))
    if summary and summary.get("status") in FINAL:
      record(workdir, name, overrides, summary["status"], summary)
      with guard:
        counts["done"] += 1
      return
    lock = TrialLock(trial_dir)
    if not lock.acquire():
      with guard:
        counts["skipped"] += 1
        show()
      return
    with guard:
      counts["running"] += 1
      slot = free.pop()
    t0, status = time.time(), "failed"
    try:
      code, tail = _run_trial(path, arg, overrides, trial_dir, slot)
      summary = workdir_lib.read_json(os.path.join(trial_dir, "summary.json"))
      status = summary.get("status") if summary else "failed"
      if code != 0 and status not in FINAL:
        status = "failed"
      record(workdir, name, overrides, status, summary,
             error=None if status in FINAL else tail)
    finally:
      lock.release()
      with guard:
        free.append(slot)
        counts["running"] -= 1
        counts["done" if status in FINAL else "failed"] += 1
        durations.append(time.time() - t0)
        show()

  with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    for future in [pool.submit(one, n, o) for n, o in trials]:
      future.result()
  show()
  return counts


def _main(job_json: str) -> int:
  """One trial, in its own process: `python -m seqjax.sweep JOB_JSON`."""
  from absl import logging  # pylint: disable=import-outside-toplevel
  from seqjax import train  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.WARNING)
  job = json.loads(job_json)
  os.sched_setaffinity(0, job["cores"])  # this trial's share of the machine
  config = trial_config(load_experiment(job["path"]), job["arg"], job["overrides"])
  summary = train.train_and_evaluate(config, job["workdir"], progress=False)
  return 0 if summary["status"] in FINAL else 1


if __name__ == "__main__":
  sys.exit(_main(sys.argv[1]))
