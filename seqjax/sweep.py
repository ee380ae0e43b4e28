"""Sweeps: a grid of trials beside an experiment's config, run resumably.

An experiment file may define `get_sweep(arg)` returning a list of override
dicts, built with `values`, `product`, `zipped` and `chain`:

  def get_sweep(arg):
    return sweep.product(sweep.values("arg.model", ["lstm", "gru"]),
                         sweep.values("train.learning_rate", [1e-3, 3e-3]),
                         sweep.values("train.seed", [0, 1]))

Override keys: `arg.NAME` sets NAME in `get_config`'s argument (so the
experiment itself builds, say, the model section of each architecture);
`SECTION.KEY` sets a config value afterwards.

Trials whose configs differ only in values that do not change the compiled
program (`experiment.GROUPABLE`: seed, learning rate, weight decay, clipping,
warmup) train together as one group: one process, one vmapped program
(`train.train_trials`), up to `group_size` trials. Each trial still runs in
DIR/<trial name>/ with the files of a single run. Groups run in their own
processes, `jobs` at a time on disjoint cores (or GPUs); a crash of one never
stops the others, and a group's process dies with the runner. Rerunning the
command skips finished (completed or diverged) trials, resumes interrupted
ones from their checkpoints and retries failed ones; each trial's workdir lock
(`run_lock`) keeps two processes off the same trial. DIR/results.jsonl holds one
line per trial. Compiled programs are cached in DIR/.jax_cache (JAX's
persistent compilation cache; JAX_COMPILATION_CACHE_DIR overrides it), so a
rerun does not compile again.
"""

import concurrent.futures
import ctypes
import fcntl
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from absl import logging
import ml_collections

from seqjax import configs
from seqjax import parallel
from seqjax import run_files
from seqjax import run_lock
from seqjax import strict_json
from seqjax.errors import ConfigError

FINAL = ("completed", "diverged")
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
RESULT_KEYS = ("metric", "mode", "chance", "baselines", "final", "best", "test", "num_params",
               "steps_per_s", "wall_time_s", "peak_memory_mb", "step_temp_mb",
               "step", "group_size")


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
  """A readable, stable directory name: `model=lstm,task.delay=20,...`.

  A name longer than MAX_NAME_BYTES keeps a readable prefix and ends with a hash
  of the whole name, so every trial still has its own directory.
  """
  parts = []
  for key, value in overrides.items():
    key = key[len("arg."):] if key.startswith("arg.") else key
    parts.append(f"{key}={value!r}" if isinstance(value, str) and not value
                 else f"{key}={value}")
  name = re.sub(r"[^A-Za-z0-9._=,+-]", "_", ",".join(parts))
  if len(name) <= MAX_NAME_BYTES:
    return name
  digest = hashlib.sha256(name.encode()).hexdigest()[:12]
  return f"{name[:MAX_NAME_BYTES - len(digest) - 1]}-{digest}"


def load_experiment(path: str):
  return configs.load_module(path)


def trial_config(module, arg: str | None, overrides: dict
                 ) -> ml_collections.ConfigDict:
  """The config of one trial: `get_config` with the `arg.*` overrides merged into
  its argument, then the dotted overrides applied to known keys only."""
  args = configs.split_arg(arg)
  args.update({k[len("arg."):]: str(v) for k, v in overrides.items()
               if k.startswith("arg.")})
  config = configs.get_config(module, ",".join(f"{k}={v}" for k, v in args.items()))
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
    try:
      node[leaf] = value
    except TypeError:  # ConfigDict keeps each field's type
      raise ConfigError(
          f"Sweep override {key}={value!r} has the wrong type: {key} is a "
          f"{type(node[leaf]).__name__} ({node[leaf]!r} by default); give one "
          f"{type(node[leaf]).__name__} per trial (a list of values is a grid: "
          "sweep.values).") from None
  return config


def expand(path: str, arg: str | None, overrides: dict | None = None
           ) -> list[tuple[str, dict]]:
  """(name, overrides) of every trial, each checked by building its config.

  `overrides` (`{"model.width": 16}`, from `--config.model.width=16`) apply to
  every trial after its own: they join each trial's overrides, last, and leave
  its name as the grid alone makes it.
  """
  module = load_experiment(path)
  if not hasattr(module, "get_sweep"):
    raise ConfigError(f"{path} defines no get_sweep(arg); --mode=sweep needs one.")
  trials = [(trial_name(o), {**o, **(overrides or {})})
            for o in module.get_sweep(arg)]
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


def record(workdir: str, name: str, overrides: dict, status: str,
           summary: dict | None, error: str | None = None) -> None:
  """Puts the trial's line in DIR/results.jsonl: appended if new, replaced in an
  atomic rewrite if it changed (a failed trial that later completed), never
  duplicated. Serialised across processes by a lock on results.jsonl.lock."""
  line = {"trial": name, "overrides": overrides, "status": status}
  line.update({k: (summary or {}).get(k) for k in RESULT_KEYS})
  extra = {k: v for k, v in (summary or {}).items() if k.startswith("test_")}
  if extra:  # the task's extra test sets (`eval_sets`), e.g. test_len1024
    line["extra_tests"] = extra
  if error:
    line["error"] = error
  line = strict_json.clean(line)
  path = os.path.join(workdir, "results.jsonl")
  with open(path + ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    lines, cut = _read_results(path)
    old = [r for r in lines if r["trial"] == name]
    if old == [line] and not cut:
      return
    if not old and not cut:
      with open(path, "a") as f:
        f.write(strict_json.dumps(line) + "\n")
      return
    lines = [line if r["trial"] == name else r for r in lines]
    lines += [] if old else [line]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:  # also drops a last line cut short
      f.writelines(strict_json.dumps(r) + "\n" for r in lines)
    os.replace(tmp, path)


def read_results(workdir: str) -> list[dict]:
  """The lines of DIR/results.jsonl. A last line cut short (a runner killed while
  writing it) is skipped with a warning; the next `record` rewrites the file
  without it. A malformed line before the last is an error."""
  path = os.path.join(workdir, "results.jsonl")
  lines, cut = _read_results(path)
  if cut:
    logging.warning("%s: the last line is cut short (a runner killed while "
                    "writing it); skipped it.", path)
  return lines


def _read_results(path: str) -> tuple[list[dict], bool]:
  """(lines, whether the last line was cut short)."""
  if not os.path.exists(path):
    return [], False
  with open(path) as f:
    text = f.read()
  rows = text.split("\n")
  out = []
  for number, row in enumerate(rows, 1):
    if not row.strip():
      continue
    try:
      out.append(json.loads(row))
    except json.JSONDecodeError as e:
      if number == len(rows):  # no newline after it: a write cut short
        return out, True
      raise ConfigError(f"{path}, line {number}: not a JSON object ({e.msg}); "
                        "fix or remove that line.") from None
  return out, not text.endswith("\n") and bool(text)


def default_group_size() -> int:
  """Trials per group: 8 on a CPU, 32 with an accelerator (GPU, TPU), where a
  small model uses a sliver of the device. Decided without starting JAX."""
  return 32 if parallel.has_accelerator() else 8


def make_groups(path: str, arg: str | None, trials: list, size: int) -> list:
  """Trials in groups of at most `size` that share a program, in trial order
  within a group; the groups of longer sequences first, so that with several
  jobs the longest groups do not start last (longest-processing-time order)."""
  configs.check_positive("--group_size", group_size=size)
  from seqjax import tasks, train  # pylint: disable=import-outside-toplevel
  module = load_experiment(path)
  by_program, length = {}, {}
  for name, overrides in trials:
    config = trial_config(module, arg, overrides)
    key = train.program_key(config)
    by_program.setdefault(key, []).append((name, overrides))
    length[key] = tasks.build(config.task).io.length
  order = sorted(by_program, key=lambda k: -length[k])
  return [by_program[k][i:i + size] for k in order
          for i in range(0, len(by_program[k]), size)]


def _slots(jobs: int) -> list[dict]:
  """What each of `jobs` concurrent groups gets: a disjoint set of CPU cores
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


def group_log(workdir: str, names: list[str]) -> str:
  digest = hashlib.sha1("\n".join(names).encode()).hexdigest()[:10]
  return os.path.join(workdir, "groups", f"{digest}.log")


class _Runner:
  """Runs groups in child processes and keeps the counts; stops them all on
  SIGINT or SIGTERM (they checkpoint and record `interrupted`)."""

  def __init__(self, path, arg, workdir, jobs, out):
    self.path, self.arg, self.workdir, self.out = path, arg, workdir, out
    self.jobs = jobs
    self.counts = dict(done=0, running=0, failed=0, interrupted=0, held=0)
    self.held = {}
    self.guard = threading.Lock()
    self.free = list(_slots(jobs))
    self.children = set()
    self.stopping = False
    self.started, self.durations, self.total = time.time(), [], 0
    self.finished = set()  # trials final before this run, not yet reached

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

  def group(self, members: list) -> None:
    todo = []
    for name, overrides in members:
      trial_dir = os.path.join(self.workdir, name)
      summary = run_files.read_json(os.path.join(trial_dir, "summary.json"))
      info = run_lock.holder(trial_dir)
      if _is_final(summary):
        record(self.workdir, name, overrides, summary["status"], summary)
        self._count("done")
        with self.guard:
          self.finished.discard(name)
      elif info and info["live"] is not False:
        self.held[name] = run_lock.describe(info)
        self._count("held")
      else:
        todo.append((name, overrides))
    if not todo or self.stopping:
      return
    with self.guard:
      self.counts["running"] += len(todo)
      slot = self.free.pop()
    t0 = time.time()
    try:
      code, tail = self._run(todo, slot)
    finally:
      with self.guard:
        self.free.append(slot)
        self.counts["running"] -= len(todo)
    reported = run_files.read_json(self._status_path(todo)) or {}
    for name, overrides in todo:
      if reported.get(name, {}).get("status") == "held":
        self.held[name] = reported[name].get("error", "another process")
        self._count("held")
        continue
      summary = run_files.read_json(
          os.path.join(self.workdir, name, "summary.json")) or {}
      status = summary.get("status", "failed")
      if status not in FINAL + ("interrupted",):
        status = "failed"
      error = None if status in FINAL else (summary.get("error") or tail)
      record(self.workdir, name, overrides, status, summary, error=error)
      self._count({"completed": "done", "diverged": "done"}.get(status, status))
    self.durations.append((time.time() - t0) / len(todo))
    self.show()

  def _count(self, key: str) -> None:
    with self.guard:
      self.counts[key] += 1

  def _status_path(self, members: list) -> str:
    return group_log(self.workdir, [n for n, _ in members])[:-len(".log")] + ".json"

  def _run(self, members: list, slot: dict) -> tuple[int, str]:
    env = dict(os.environ)
    if "gpus" in slot:
      env["CUDA_VISIBLE_DEVICES"] = ",".join(slot["gpus"])
    env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS", ""),
                                              SINGLE_THREADED_EIGEN]))
    env.setdefault("JAX_COMPILATION_CACHE_DIR",
                   os.path.join(os.path.abspath(self.workdir), ".jax_cache"))
    for key, value in KEEP_FREED_MEMORY.items():  # a user's own setting wins
      env.setdefault(key, value)
    names = [n for n, _ in members]
    job = json.dumps(dict(
        path=os.path.abspath(self.path), arg=self.arg, cores=slot["cores"],
        parent=os.getpid(), status=self._status_path(members),
        trials=[dict(name=n, overrides=o, workdir=os.path.join(self.workdir, n))
                for n, o in members]))
    if os.path.exists(self._status_path(members)):
      os.remove(self._status_path(members))
    log_path = group_log(self.workdir, names)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "a") as log:
      log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} trials: "
                f"{', '.join(names)}\n")
      log.flush()
      with self.guard:
        if self.stopping:
          return 1, "the sweep was stopped"
        # A session of its own: a terminal's Ctrl-C reaches the runner, which
        # passes one signal on; the child dies with the runner (_die_with_parent).
        proc = subprocess.Popen([sys.executable, "-m", "seqjax.sweep", job],
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.children.add(proc)
      code = proc.wait()
      with self.guard:
        self.children.discard(proc)
    with open(log_path) as log:
      tail = log.read()[-2000:]
    return code, tail


def run(path: str, arg: str | None, workdir: str, jobs: int = 1,
        shard_spec: str | None = None, group_size: int | None = None,
        out=sys.stdout, overrides: dict | None = None) -> dict:
  """Runs this shard's groups, `jobs` at a time; returns the counts by status
  (`done`, `failed`, `interrupted`, `held`: held by another live process).
  `overrides` (from `--config.KEY=VALUE`) apply to every trial (`expand`)."""
  configs.check_positive("--jobs", jobs=jobs)
  trials = expand(path, arg, overrides)
  if group_size is None:
    group_size = default_group_size()
    print(f"[sweep] groups of up to {group_size} trials (the default "
          f"{'with an accelerator' if group_size > 8 else 'on a CPU'}; "
          "--group_size=N to change)", file=out, flush=True)
  groups = shard(make_groups(path, arg, trials, group_size), shard_spec)
  os.makedirs(workdir, exist_ok=True)
  runner = _Runner(path, arg, workdir, jobs, out)
  cores = len(os.sched_getaffinity(0))
  if cores // jobs > 1 and not parallel.has_accelerator():
    print(f"[sweep] each group gets {cores // jobs} cores, but XLA:CPU's Eigen "
          "runs on one thread in a group (multi-threaded, it can hang a group's "
          f"step); --jobs={cores} runs a group on every core.", file=out, flush=True)
  runner.total = sum(len(g) for g in groups)
  runner.finished = {name for g in groups for name, _ in g if _is_final(
      run_files.read_json(os.path.join(workdir, name, "summary.json")))}
  if runner.finished:
    print(f"[sweep] {len(runner.finished)} of {runner.total} trials already "
          "finished: recorded, not trained again.", file=out, flush=True)
  previous = {s: signal.signal(s, runner.stop)
              for s in (signal.SIGINT, signal.SIGTERM)
              } if threading.current_thread() is threading.main_thread() else {}
  try:
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
      for future in [pool.submit(runner.group, g) for g in groups]:
        future.result()
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  runner.show()
  for name, holder in sorted(runner.held.items()):
    print(f"[sweep] {name} is held by {holder}; it was not run.", file=out)
  if runner.stopping:
    print("[sweep] stopped: running trials were checkpointed and recorded as "
          "interrupted; rerun the same command to resume.", file=out)
  return runner.counts


def _is_final(summary: dict | None) -> bool:
  """Whether a trial's summary.json (None: none yet) says it finished."""
  return bool(summary) and summary.get("status") in FINAL


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


def _main(job_json: str) -> int:
  """One group, in its own process: `python -m seqjax.sweep JOB_JSON`."""
  from absl import logging  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from seqjax import train  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.WARNING)
  job = json.loads(job_json)
  _die_with_parent(job["parent"])
  os.sched_setaffinity(0, job["cores"])  # this group's share of the machine
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  module = load_experiment(job["path"])
  trial_configs = [trial_config(module, job["arg"], t["overrides"])
                   for t in job["trials"]]
  summaries = train.train_trials(trial_configs,
                                 [t["workdir"] for t in job["trials"]])
  run_files.write_json(job["status"], {
      t["name"]: {k: s.get(k) for k in ("status", "error")}
      for t, s in zip(job["trials"], summaries)})
  return 0 if all(s["status"] in FINAL for s in summaries) else 1


if __name__ == "__main__":
  sys.exit(_main(sys.argv[1]))
