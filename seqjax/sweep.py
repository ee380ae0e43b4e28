"""Sweeps: a grid of trials beside an experiment's config, run resumably.

An experiment file defines `get_sweep(arg)`, a list of override dicts built with
`values`, `product`, `zipped` and `chain`, and may name the report's x-axis:

  SWEEP_AXIS = "arg.length"
  def get_sweep(arg):
    return sweep.product(sweep.values("arg.model", ["lstm", "gru"]),
                         sweep.values("arg.length", [50, 100]),
                         sweep.values("train.seed", [0, 1]))

`arg.NAME` sets NAME in `get_config`'s argument, `SECTION.KEY` a config value
afterwards. Trials that share a compiled program train as one group in a
process of their own (`train.train_trials`), `jobs` groups at a time; each trial
keeps its directory, DIR/<trial>/, as its only record. docs/architecture.md
("Sweeps, trial groups and reports") tells the whole design.
"""

import concurrent.futures
import contextlib
import ctypes
import hashlib
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from typing import NamedTuple

import ml_collections

from seqjax import configs
from seqjax import parallel
from seqjax import run_files
from seqjax import run_lock
from seqjax.errors import ConfigError

# glibc's malloc in a group's process: one arena, never mmap, keep up to 1 GiB
# freed. XLA:CPU mallocs a program's temporaries on every execution; a group's
# (N runs' worth) pass glibc's mmap threshold, and each step then page-faulted
# its whole buffer in again (docs/benchmarks.md, "Trial groups: the group step
# against N solo steps"). The process keeps its peak memory; results unchanged.
KEEP_FREED_MEMORY = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0",
                     "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
# A group's process runs XLA:CPU's Eigen on one thread, whatever its cores: with
# multi-threaded Eigen a vmapped (group) step can wait forever in
# block_until_ready, every XLA thread idle (an LSTM group of 4 at width 256 hung
# in 2 of 6 processes, 0 of 5 single-threaded; docs/benchmarks.md, "A trial
# group that hangs"). A sweep uses several cores through --jobs, one group per core.
SINGLE_THREADED_EIGEN = "--xla_cpu_multi_thread_eigen=false"
MAX_NAME_BYTES = 200  # trial directory names stay well under NAME_MAX (255)
TRIAL_FILE = "trial.json"  # DIR/<trial>/trial.json: overrides, axis, group_log


class Trial(NamedTuple):
  name: str                          # its directory under the sweep's workdir
  overrides: dict                    # the grid's, then the command line's
  config: ml_collections.ConfigDict  # built once, by `expand`
  length: int                        # the task's sequence length


def values(key: str, vals) -> list[dict]:
  return [{key: v} for v in vals]


def product(*lists: list[dict]) -> list[dict]:
  """Every combination, the first list varying slowest."""
  return [{k: v for d in combo for k, v in d.items()}
          for combo in itertools.product(*lists)]


def zipped(*lists: list[dict]) -> list[dict]:
  if len({len(x) for x in lists}) > 1:
    raise ConfigError(f"sweep.zipped needs lists of one length, got "
                      f"{[len(x) for x in lists]}.")
  return [{k: v for d in group for k, v in d.items()} for group in zip(*lists)]


def chain(*lists: list[dict]) -> list[dict]:
  return [d for x in lists for d in x]


def trial_name(overrides: dict) -> str:
  """A readable, stable directory name: `model=lstm,task.delay=20,...`.

  A name longer than MAX_NAME_BYTES keeps a readable prefix and ends with a hash
  of the whole name, so every trial still has its own directory.
  """
  name = ",".join(f"{k.removeprefix('arg.')}={repr(v) if v == '' else v}"
                  for k, v in overrides.items())  # an empty string as ''
  name = re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)
  if len(name) <= MAX_NAME_BYTES:
    return name
  digest = hashlib.sha256(name.encode()).hexdigest()[:12]
  return f"{name[:MAX_NAME_BYTES - len(digest) - 1]}-{digest}"


def trial_config(module, arg: str | None, overrides: dict
                 ) -> ml_collections.ConfigDict:
  """The config of one trial: `get_config` with the `arg.*` overrides merged into
  its argument, then the dotted overrides applied to known keys only."""
  args = configs.split_arg(arg)
  args.update({k.removeprefix("arg."): str(v) for k, v in overrides.items()
               if k.startswith("arg.")})
  config = configs.get_config(module, ",".join(f"{k}={v}" for k, v in args.items()))
  for key, value in overrides.items():
    if not key.startswith("arg."):
      node, leaf = configs.find_key(config, key, f"Sweep override {key!r}")
      try:
        node[leaf] = value
      except TypeError:  # ConfigDict keeps each field's type
        raise ConfigError(
            f"Sweep override {key}={value!r} has the wrong type: {key} is a "
            f"{type(node[leaf]).__name__} ({node[leaf]!r} by default); give one "
            f"{type(node[leaf]).__name__} per trial (a list of values is a "
            "grid: sweep.values).") from None
  return config


def expand(path: str, arg: str | None, overrides: dict | None = None
           ) -> list[Trial]:
  """Every trial of the sweep, its config built once and checked (task, model,
  train), so a bad sweep fails before anything runs.

  `overrides` (`{"model.width": 16}`, from `--config.model.width=16`) apply to
  every trial after its own: they join each trial's overrides, last, and leave
  its name as the grid alone makes it.
  """
  module = configs.load_module(path)
  if not hasattr(module, "get_sweep"):
    raise ConfigError(f"{path} defines no get_sweep(arg); --mode=sweep needs one.")
  grid = module.get_sweep(arg)
  names = [trial_name(o) for o in grid]
  if len(set(names)) != len(names):
    raise ConfigError("Two trials of the sweep have the same overrides.")
  axis = getattr(module, "SWEEP_AXIS", None)  # the report's x-axis, or None
  if axis and grid and not any(axis in o for o in grid):
    raise ConfigError(f"{path}: SWEEP_AXIS={axis!r} is no override of the sweep; "
                      f"its keys: {', '.join(sorted({k for o in grid for k in o}))}.")
  return [trial(module, arg, {**own, **(overrides or {})}, name)
          for name, own in zip(names, grid)]


def trial(module, arg: str | None, overrides: dict, name: str | None = None
          ) -> Trial:
  """One trial of experiment `module`, its config built once and checked (task,
  model, train); named `trial_name(overrides)` unless `name` is given."""
  from seqjax import models, tasks  # pylint: disable=import-outside-toplevel
  config = trial_config(module, arg, overrides)
  task = tasks.build(config.task)
  models.build(config.model, task.io)
  configs.train_config(config.train)
  return Trial(name or trial_name(overrides), overrides, config, task.io.length)


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


def default_group_size() -> int:
  """Trials per group: 8 on a CPU, 32 with an accelerator (GPU, TPU), where a
  small model uses a sliver of the device. Decided without starting JAX."""
  return 32 if parallel.has_accelerator() else 8


def make_groups(trials: list[Trial], size: int) -> list[list[Trial]]:
  """Trials in groups of at most `size` that share a program, in trial order
  within a group; the groups of longer sequences first, so that with several
  jobs the longest groups do not start last (longest-processing-time order)."""
  configs.check_positive("--group_size", group_size=size)
  from seqjax import train  # pylint: disable=import-outside-toplevel
  by_program = {}
  for t in trials:
    by_program.setdefault(train.program_key(t.config), []).append(t)
  order = sorted(by_program.values(), key=lambda g: -g[0].length)
  return [g[i:i + size] for g in order for i in range(0, len(g), size)]


def write_trial(trial_dir: str, overrides: dict, axis: str | None = None,
                log: str | None = None) -> None:
  """DIR/<trial>/trial.json, written before the trial trains: what the report
  needs that the run's own files do not say (`log` relative to the sweep's DIR)."""
  os.makedirs(trial_dir, exist_ok=True)
  run_files.write_json(os.path.join(trial_dir, TRIAL_FILE),
                       dict(overrides=overrides, axis=axis, group_log=log))


def outcome(trial_dir: str) -> tuple[str, dict]:
  """(status, summary) of a trial from its directory: the summary's status when
  final; "held" while a live process (or one on another host) holds the trial;
  else "interrupted" as the summary says, or "failed": no summary, or one left
  unfinished by a process that crashed or was killed."""
  info = run_lock.holder(trial_dir)  # before the summary: a holder may finish
  summary = run_files.read_json(os.path.join(trial_dir, "summary.json")) or {}
  if summary.get("status") in run_files.FINAL:
    return summary["status"], summary
  if info and info["live"] is not False:
    return "held", dict(summary, holder=run_lock.describe(info))
  return ("interrupted" if summary.get("status") == "interrupted" else "failed",
          summary)


def usable_cores() -> list[int]:
  """The CPU cores this process may run on; every core where the system does
  not say (macOS has no sched_getaffinity; a group is then not pinned)."""
  if hasattr(os, "sched_getaffinity"):
    return sorted(os.sched_getaffinity(0))
  return list(range(os.cpu_count() or 1))


class Runner:
  """Runs groups in child processes and keeps the counts; stops them all on
  SIGINT or SIGTERM (they checkpoint and record `interrupted`)."""

  def __init__(self, workdir: str, jobs: int, out, axis: str | None = None):
    self.workdir, self.jobs, self.out, self.axis = workdir, jobs, out, axis
    self.counts = dict(done=0, running=0, failed=0, interrupted=0, held=0)
    self.held, self.failed = {}, {}  # trial name: its holder, its group's log
    self.guard = threading.Lock()
    # The slots of groups not running: disjoint sets of CPU cores
    # (sched_setaffinity), and of CUDA_VISIBLE_DEVICES if set.
    self.free = queue.Queue()
    cores = self.cores = usable_cores()
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    part = lambda xs, i: xs[i * len(xs) // jobs:(i + 1) * len(xs) // jobs] or xs
    for i in range(jobs):
      self.free.put(dict(cores=part(cores, i),
                         **({"gpus": part(gpus, i)} if gpus else {})))
    self.children = set()
    self.stopping = False
    self.started, self.durations, self.total = time.time(), [], 0
    self.finished = set()  # trials final before this run, not yet reached

  def run(self, groups: list[list[Trial]]) -> None:
    """Trains `groups`, `jobs` at a time; returns when they have ended. Safe to
    call from several threads at once (a search that decides its trials as it
    goes): every group waits for a free slot."""
    os.makedirs(self.workdir, exist_ok=True)
    cores = len(self.cores)
    if not self.total and cores // self.jobs > 1 and not parallel.has_accelerator():
      print(f"[sweep] each group gets {cores // self.jobs} cores, but XLA:CPU's "
            "Eigen runs on one thread in a group (multi-threaded, it can hang a "
            f"group's step); --jobs={cores} runs a group on every core.",
            file=self.out, flush=True)
    finished = {t.name for g in groups for t in g if outcome(
        os.path.join(self.workdir, t.name))[0] in run_files.FINAL}
    with self.guard:
      self.total += sum(len(g) for g in groups)
      self.finished |= finished
    if finished:
      print(f"[sweep] {len(finished)} of {sum(len(g) for g in groups)} trials "
            "already finished, not trained again.", file=self.out, flush=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs) as pool:
      for future in [pool.submit(self.group, g) for g in groups]:
        future.result()

  @contextlib.contextmanager
  def stopped_by_signals(self):
    """SIGINT and SIGTERM stop the running groups (`stop`) while inside; only
    the main thread can take signals, elsewhere this does nothing."""
    previous = {s: signal.signal(s, self.stop)
                for s in (signal.SIGINT, signal.SIGTERM)
                } if threading.current_thread() is threading.main_thread() else {}
    try:
      yield
    finally:
      for s, handler in previous.items():
        signal.signal(s, handler)

  def show(self):
    c = self.counts
    left = (self.total - c["done"] - c["failed"] - c["held"] - c["interrupted"]
            - len(self.finished))  # the time left is for trials still to train
    eta = ""
    if self.durations and left > 0:
      mean = sum(self.durations) / len(self.durations)
      eta = f", about {mean * left / self.jobs:.0f} s left"
    print(f"[sweep] {c['done']} done, {c['running']} running, {c['failed']} "
          f"failed, {c['interrupted']} interrupted, {c['held']} held elsewhere, "
          f"of {self.total} trials{eta} ({time.time() - self.started:.0f} s)",
          file=self.out, flush=True)

  def stop(self, signum, frame=None):
    del frame
    self.stopping = True
    with self.guard:
      for child in self.children:
        child.send_signal(signal.SIGTERM if signum == signal.SIGTERM
                          else signal.SIGINT)

  def group(self, members: list[Trial]) -> None:
    todo = [t for t in members if not self._settled(t)]
    if not todo or self.stopping:
      return
    with self.guard:
      self.counts["running"] += len(todo)
    slot = self.free.get()  # waits for a free slot
    t0 = time.time()
    try:
      log = self._run(todo, slot)
    finally:
      self.free.put(slot)
      with self.guard:
        self.counts["running"] -= len(todo)
    if log is None:  # the sweep was stopped before this group started
      return
    for t in todo:  # the group has ended: its trials' directories say how
      self._settled(t, log)
    self.durations.append((time.time() - t0) / len(todo))
    self.show()

  def _settled(self, t: Trial, log: str | None = None) -> bool:
    """Counts trial `t` by its directory (`outcome`) and says True, unless it
    is still to train: before its group ran (no `log`), neither finished nor
    held by another process (which may also take it before its group can)."""
    status, summary = outcome(os.path.join(self.workdir, t.name))
    if log is None and status not in run_files.FINAL + ("held",):
      return False
    with self.guard:
      if status == "held":
        self.held[t.name] = summary["holder"]
      elif status == "failed":
        self.failed[t.name] = log
      self.finished.discard(t.name)
      self.counts["done" if status in run_files.FINAL else status] += 1
    return True

  def _run(self, members: list[Trial], slot: dict) -> str | None:
    """Trains `members` in a child process; returns its log's path (None if
    the sweep was stopped before it started)."""
    env = {**KEEP_FREED_MEMORY, "JAX_COMPILATION_CACHE_DIR": os.path.join(
        os.path.abspath(self.workdir), ".jax_cache"), **os.environ}  # the user's win
    env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS", ""),
                                              SINGLE_THREADED_EIGEN]))
    if "gpus" in slot:
      env["CUDA_VISIBLE_DEVICES"] = ",".join(slot["gpus"])
    names = [t.name for t in members]
    dirs = [os.path.join(self.workdir, n) for n in names]
    job = json.dumps(dict(cores=slot["cores"], parent=os.getpid(), workdirs=dirs,
                          configs=[run_files.config_dict(t.config) for t in members]))
    digest = hashlib.sha1("\n".join(names).encode()).hexdigest()[:10]
    log_path = os.path.join(self.workdir, "groups", f"{digest}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "a") as log:
      log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} trials: "
                f"{', '.join(names)}\n")
      log.flush()
      with self.guard:
        if self.stopping:
          return None
        for t, trial_dir in zip(members, dirs):
          write_trial(trial_dir, t.overrides, self.axis,
                      os.path.relpath(log_path, self.workdir))
        # A session of its own: a terminal's Ctrl-C reaches the runner, which
        # passes one signal on; the child dies with the runner (_die_with_parent).
        proc = subprocess.Popen([sys.executable, "-m", "seqjax.sweep"], env=env,
                                stdin=subprocess.PIPE, stdout=log,
                                stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        self.children.add(proc)
      proc.communicate(job)  # the job on stdin: no limit on its size
      with self.guard:
        self.children.discard(proc)
    return log_path


def run(path: str, arg: str | None, workdir: str, jobs: int = 1,
        shard_spec: str | None = None, group_size: int | None = None,
        out=sys.stdout, overrides: dict | None = None) -> dict:
  """Trains this shard's groups, `jobs` at a time; finished trials are not
  trained again. Returns the counts by status (`done`, `failed`, `interrupted`,
  `held`: held by another live process). `overrides` (from
  `--config.KEY=VALUE`) apply to every trial (`expand`)."""
  configs.check_positive("--jobs", jobs=jobs)
  run_files.check_writable(workdir)
  trials = expand(path, arg, overrides)
  if group_size is None:
    group_size = default_group_size()
    print(f"[sweep] groups of up to {group_size} trials (the default "
          f"{'with an accelerator' if group_size > 8 else 'on a CPU'}; "
          "--group_size=N to change)", file=out, flush=True)
  groups = shard(make_groups(trials, group_size), shard_spec)
  runner = Runner(workdir, jobs, out, getattr(configs.load_module(path),
                                             "SWEEP_AXIS", None))
  with runner.stopped_by_signals():
    runner.run(groups)
  runner.show()
  for name, holder in sorted(runner.held.items()):
    print(f"[sweep] {name} is held by {holder}; it was not run.", file=out)
  for name, log in sorted(runner.failed.items()):
    print(f"[sweep] {name} failed; its group's log: {log}", file=out)
  if runner.stopping:
    print("[sweep] stopped: running trials were checkpointed as interrupted; "
          "rerun the same command to resume.", file=out)
  return runner.counts


def exit_status(counts: dict) -> int:
  """launch.py's exit status for the counts of `run` (or `horizon.run`): 130
  when interrupted (rerun to resume), 1 when a trial failed or is held
  elsewhere (or a search is unfinished), else 0."""
  if counts["interrupted"]:
    return 130
  return int(any(counts.get(k) for k in ("failed", "held", "unfinished")))


def _die_with_parent(parent: int) -> None:
  """Linux: this process gets SIGTERM when the runner that started it dies
  (so a trial never trains on unowned); it stops at a step boundary."""
  try:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
  except OSError:
    return
  if os.getppid() != parent:  # the runner died before prctl
    os.kill(os.getpid(), signal.SIGTERM)


def _main() -> int:
  """One group, in its own process: `python -m seqjax.sweep`, the job's JSON
  (configs, workdirs, cores, the runner's pid) on stdin."""
  from absl import logging  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from seqjax import train  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.WARNING)
  job = json.load(sys.stdin)
  _die_with_parent(job["parent"])
  if hasattr(os, "sched_setaffinity"):  # Linux: this group's share of the machine
    os.sched_setaffinity(0, job["cores"])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  summaries = train.train_trials(
      [ml_collections.ConfigDict(c) for c in job["configs"]], job["workdirs"],
      progress=False)
  return 0 if all(s["status"] in run_files.FINAL for s in summaries) else 1


if __name__ == "__main__":
  sys.exit(_main())
