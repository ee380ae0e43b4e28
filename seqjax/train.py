"""Training: the loop that runs a trial group of N >= 1 runs, each in its own
workdir with the files of a single run, on the compiled group step of
`seqjax.stepping`; it evaluates, checkpoints, stops runs that diverge or are
solved, and writes each run's summary. A run of one config
(`train_and_evaluate`) is a group of one, on the mesh of `config.mesh`.

What it runs on is built by `seqjax.experiment`, and the steps by
`seqjax.stepping`.
"""

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as onp

from seqjax import checkpoints
from seqjax import experiment
from seqjax import metric_log
from seqjax import parallel
from seqjax import run_files
from seqjax import run_lock
from seqjax import scores
from seqjax import stepping
from seqjax.errors import ConfigError
from seqjax.tasks import base


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       progress: bool = True) -> dict:
  """Trains, evaluates and checkpoints; resumes if `workdir` has a checkpoint.

  A finished run (completed or diverged) is left as it is; a workdir that
  another live process trains is an error. Returns the summary also written to
  DIR/summary.json.
  """
  summary = train_trials([config], [workdir], progress)[0]
  if summary["status"] == "held":
    raise ConfigError(summary["error"])
  return summary


def train_trials(configs_: list, workdirs: list[str], progress: bool = False
                 ) -> list[dict]:
  """Trains runs whose configs differ only in `experiment.GROUPABLE` train keys
  as one program, each in its own workdir with the files of a single run, and
  computing what it would alone (to float32 rounding); returns the summaries.

  Finished runs are skipped; a run another live process holds is `held`. The
  locks are taken before anything is compiled and released, with the
  directories made for them, when the group is refused.
  """
  exps = [experiment.build(c) for c in configs_]
  if len({program_key(c) for c in configs_}) > 1:
    raise ValueError("A group's configs must differ only in train."
                     f"{{{', '.join(experiment.GROUPABLE)}}}.")
  for config, workdir in zip(configs_, workdirs):
    run_files.check(workdir, config)
  out = [run_files.read_json(os.path.join(w, "summary.json")) for w in workdirs]
  writer = parallel.is_writer()  # of several processes, the first holds locks
  todo, locks, created = [], [], []
  try:
    for n, workdir in enumerate(workdirs):
      if out[n] and out[n].get("status") in run_files.FINAL:
        logging.warning("%s holds a finished run (%s at step %s); nothing to do.",
                        workdir, out[n]["status"], out[n].get("step"))
        continue
      lock, path = run_lock.RunLock(workdir), os.path.abspath(workdir)
      while writer and not os.path.exists(path):  # made by acquire
        created.append(path)
        path = os.path.dirname(path)
      if writer and not lock.acquire():
        info = run_lock.holder(workdir)
        message = (f"--workdir={workdir!r} is being trained by "
                   f"{run_lock.describe(info) if info else 'another process'}; "
                   "wait for it to finish or stop it, then rerun.")
        logging.warning("%s", message)
        out[n] = dict(status="held", error=message, holder=info)
        continue
      locks.append(lock)
      todo.append(n)
    if todo:
      with _stop_on_signals() as stop:
        group = _Group([exps[n] for n in todo], [workdirs[n] for n in todo],
                       [out[n] for n in todo], progress, stop)
        try:
          for n, summary in zip(todo, group.train()):
            out[n] = summary
        finally:
          group.close()
  finally:
    for lock in locks:
      lock.release()
    for path in created:  # those left empty: a group refused before writing
      with contextlib.suppress(OSError):
        os.rmdir(path)
  return out


def program_key(config: ml_collections.ConfigDict) -> str:
  """What the compiled program of a run depends on: its config without the
  `experiment.GROUPABLE` train keys (clipping or not is part of the program).
  Runs with equal keys can train together as one group."""
  d = run_files.config_dict(config)
  train_cfg = {k: v for k, v in d["train"].items() if k not in experiment.GROUPABLE}
  clips = d["train"]["grad_clip"] > 0
  return json.dumps({**d, "train": train_cfg, "clips": clips}, sort_keys=True)


class _Trial:
  """One run of a group while it trains: its checkpoints, log and summary.

  Opening it restores its newest good checkpoint before any of its files is
  written, so a checkpoint that does not fit the model (a ConfigError) leaves
  the directory as it was.
  """

  def __init__(self, exp: experiment.Experiment, workdir: str,
               previous: dict | None, abstract, progress: bool):
    tc, writer = exp.train, parallel.is_writer()
    self.exp, self.workdir, self.writer = exp, workdir, writer
    self.mngr = checkpoints.manager(workdir, tc.keep_checkpoints,
                                    exp.task.metric, exp.task.mode)
    try:
      self.restored, self.start = checkpoints.restore_latest(self.mngr, abstract)
    except BaseException:
      self.mngr.close()
      raise
    if self.restored is not None:
      logging.info("Resuming from step %d in %s", self.start, workdir)
    if writer:
      run_files.init(workdir, exp.config)
    self.log = metric_log.MetricLog(workdir, self.start, tc.steps,
                                    progress and writer, write=writer)
    self.step, self.saved, self.status = self.start, self.start, "running"
    self.notes = {}  # diverged_at, interrupted_by, stopped, error, the test splits
    self.result = None
    self.before = previous or {}  # the summary of the launches before this one

  def complete(self, step: int, tests: dict, n: int) -> None:
    """Records the test splits (run n's of `tests`) at `step`: completed."""
    for split, per_run in tests.items():
      self.notes[split] = per_run[n]
      self.log.write(step, split, per_run[n])
    self.status = "completed"

  def write_summary(self, group: "_Group") -> None:
    """DIR/summary.json: the status and what the log and this launch measured.

    Times accumulate over launches: `wall_time_s` is the sum of every launch's,
    `steps_per_s` counts every step trained (re-trained ones too) over the time
    spent in training loops.
    """
    trained = self.step - self.start
    share = (group.loop_time * trained / group.loop_steps
             if group.loop_steps else 0.0)
    steps = self.before.get("train_steps", 0) + trained
    seconds = self.before.get("train_time_s", 0.0) + share
    summary = dict(
        status=self.status, step=self.step, **base.describe(self.exp.task),
        num_params=group.num_params, group_size=len(group.trials),
        train_steps=steps, train_time_s=seconds,
        steps_per_s=steps / seconds if seconds > 0 else None,
        wall_time_s=(self.before.get("wall_time_s") or 0.0) + time.time()
        - group.launch_start,
        peak_memory_mb=stepping.peak_memory_mb(), **group.extra, **self.notes)
    summary.update(final_and_best(self.log.records, self.exp.task))
    if self.writer:
      run_files.write_json(os.path.join(self.workdir, "summary.json"), summary)
    self.result = summary

  def close(self) -> None:
    self.mngr.wait_until_finished()
    self.mngr.close()
    self.log.close()


def final_and_best(records: list[dict], task) -> dict:
  """`final` and `best` eval metrics, from the log (which survives resumes);
  `best` by `scores.best` (a non-finite value never, ties to the latest)."""
  evals = [{k: v for k, v in r.items() if k != "split"}
           for r in records if r["split"] == "eval"]
  if not evals:
    return {}
  return dict(final=evals[-1],
              best=scores.best(evals, lambda r: r.get(task.metric), task.mode))


class _Group:
  """The trials that share one compiled step, their stacked state, and the loop.

  Compiles the step from shapes first (a step too big for the device is
  refused before any file is written), then opens each trial.
  """

  def __init__(self, exps: list[experiment.Experiment], workdirs: list[str],
               previous: list, progress: bool, stop: dict):
    exp = exps[0]
    self.exp, self.tc, self.stop = exp, exp.train, stop
    self.launch_start = time.time()
    self.seeds = [e.train.seed for e in exps]
    self.compiled = stepping.make_group_step(exp).lower(
        *stepping.group_step_args(exp, self.seeds)).compile()
    self.extra = dict(step_temp_mb=stepping.compiled_temp_mb(self.compiled),
                      compile_s=time.time() - self.launch_start)
    stepping.check_fits(self.compiled, exp, len(exps))
    self.num_params = stepping.num_params(exp.state_shapes.params)
    self.trials = []
    abstract = experiment.abstract_state(exp)
    try:
      for e, workdir, before in zip(exps, workdirs, previous):
        self.trials.append(_Trial(e, workdir, before, abstract, progress))
      self.state = self._stack(exps)
    except BaseException:
      self.close()
      raise
    rep = parallel.replicated(exp.mesh)
    self.hp = {k: parallel.put(onp.asarray(
        [experiment.hyperparameters(e.train)[k] for e in exps], onp.float32), rep)
               for k in experiment.HYPER_KEYS}
    self.dropout_keys = jax.jit(
        lambda: stepping.stream_keys(self.seeds, experiment.DROPOUT),
        out_shardings=rep)()
    self.alive = parallel.put(onp.ones(len(exps), bool), rep)
    self.training = (None, None)  # (the mask as a tuple, on the devices)
    self.unstack = jax.jit(
        lambda state, n: jax.tree_util.tree_map(lambda x: x[n], state),
        out_shardings=experiment.state_shardings(exp))
    self.level = (base.solved_level(exp.task, self.tc.solved_level)
                  if self.tc.stop_when_solved else None)
    self.train_batch = stepping.make_group_batch_fn(exp, self.seeds,
                                                    experiment.TRAIN)
    self.eval_steps = {s.eval_set: stepping.make_eval_step(exp, s.task)
                       for s in stepping.eval_splits(exp, "eval")}
    self.batch_fns = {}  # {split: its batches}, made at its first evaluation
    self.pending = None  # (step, metrics) of the last step, fetched after the next
    self.tick = self.t0 = time.time()
    self.tick_step = min(t.start for t in self.trials)
    self.loop_steps, self.loop_time = 0, 0.0
    self.profiling = False

  def _stack(self, exps):
    """The trials' states (restored, else initial) stacked on the run axis."""
    init = jax.jit(experiment.init_fn(self.exp),
                   out_shardings=experiment.state_shardings(self.exp))
    states = [t.restored if t.restored is not None else init(e.key(experiment.INIT))
              for t, e in zip(self.trials, exps)]
    for t in self.trials:
      t.restored = None  # the stacked state holds it now
    return jax.jit(lambda *xs: jax.tree_util.tree_map(lambda *x: jnp.stack(x), *xs),
                   out_shardings=stepping.group_shardings(self.exp)[0])(*states)

  def running(self) -> list[_Trial]:
    return [t for t in self.trials if t.status == "running"]

  def train(self) -> list[dict]:
    """Trains to `train.steps` (or until no run trains on); the summaries."""
    try:
      self._loop()
    except Exception as e:
      for t in self.running():
        t.status, t.notes["error"] = "failed", f"{type(e).__name__}: {e}"
      self.write_summaries()
      raise
    return [t.result for t in self.trials]

  def _loop(self) -> None:
    tc, start = self.tc, min(t.start for t in self.trials)
    if start == 0:  # learning curves start at the initialisation
      self.evaluate_and_log(0)
    # The steps move nothing between host and device but on purpose (big_vision
    # sets the same guard): metrics come back by `jax.device_get` a step late,
    # and evaluating, checkpointing and writing the summaries fetch.
    with jax.transfer_guard("disallow"):
      for i in range(start, tc.steps):
        if self.stop["signal"] is not None or not self.running():
          break
        # Making the batch places its index on the mesh (on several devices or
        # hosts, a copy JAX makes when the generator runs): allowed; the step
        # itself moves nothing.
        with jax.transfer_guard("allow"):
          batch = self.train_batch(jax.device_put(i))
        metrics = self.step(batch, i)
        self.loop_steps += 1
        self.profile(i - start, metrics)
        if self.pending is not None:
          self.fetch(*self.pending)
        self.pending, step = (i + 1, metrics), i + 1
        evaluate_now = step % tc.eval_every == 0 or step == tc.steps
        if evaluate_now or step % tc.checkpoint_every == 0:
          self.fetch(*self.pending)
          self.pending = None
          with jax.transfer_guard("allow"):
            self.at_checkpoint(step, evaluate_now)
      if self.pending is not None:
        self.fetch(*self.pending)
        self.pending = None
    self.profile(tc.steps, None)
    if self.stop["signal"] is not None:
      name = signal.Signals(self.stop["signal"]).name
      for t in self.running():
        self.checkpoint(t.step)
        t.status, t.notes["interrupted_by"] = "interrupted", name
    elif self.running():
      tests = self.evaluate("test")
      for n, t in enumerate(self.trials):
        if t.status == "running":
          t.complete(tc.steps, tests, n)
    self.write_summaries()

  def step(self, batch, i: int):
    """Runs the group step i: the trials that have reached their resume step
    and still train advance; returns the metrics [N] left on the devices."""
    training = tuple(t.status == "running" and t.start <= i for t in self.trials)
    if self.training[0] != training:  # moved to the devices when it changes
      with jax.transfer_guard("allow"):
        self.training = (training, parallel.put(
            training, parallel.replicated(self.exp.mesh)))
    self.state, self.alive, metrics = self.compiled(
        self.state, self.alive, batch, self.hp, self.dropout_keys,
        self.training[1])
    return metrics

  def profile(self, done: int, metrics) -> None:
    """`train.profile_steps` > 0: a `jax.profiler` trace of that many steps
    right after the first one, into DIR/profile/ of the group's first run."""
    count = self.tc.profile_steps
    if not (count and self.trials[0].writer):
      return
    if done == 0 and not self.profiling and metrics is not None:
      jax.block_until_ready(metrics)
      jax.profiler.start_trace(os.path.join(self.trials[0].workdir, "profile"))
      self.profiling = True
    elif self.profiling and (done >= count or metrics is None):
      if metrics is not None:
        jax.block_until_ready(metrics)
      jax.profiler.stop_trace()
      self.profiling = False

  def fetch(self, step: int, metrics) -> None:
    """Logs step `step`'s metrics; a non-finite loss: the run diverged."""
    tc, task = self.tc, self.exp.task
    metrics = jax.device_get(metrics)
    log_now = step % tc.log_every == 0 or step == tc.steps
    if log_now:
      now = time.time()
      rate = (step - self.tick_step) / max(now - self.tick, 1e-9)
      self.tick, self.tick_step = now, step
    for n, t in enumerate(self.trials):
      if t.status != "running" or t.start >= step:
        continue
      values = {k: onp.reshape(v, -1)[n] for k, v in metrics.items()}
      if not math.isfinite(values["loss"]):
        logging.warning("Loss is not finite at step %d in %s: the run "
                        "diverged.", step, t.workdir)
        t.status, t.step, t.notes["diverged_at"] = "diverged", step, step
        continue
      t.step = step
      if log_now:
        t.log.write(step, "train", dict(values, steps_per_s=rate))
      shown = {task.metric: values[task.metric]} if task.metric in values else {}
      t.log.progress(step, loss=values["loss"], **shown)

  def evaluate_and_log(self, step: int) -> dict:
    """{split: [metrics of each run]} of the validation splits, logged for the
    runs that train at `step` (not those waiting for their resume step)."""
    results = self.evaluate("eval")
    for n, t in enumerate(self.trials):
      if t.status == "running" and (t.start < step or t.start == step == 0):
        for split, per_run in results.items():
          t.log.write(step, split, per_run[n])
    return results

  def at_checkpoint(self, step: int, evaluate_now: bool) -> None:
    """Evaluates (if due), checkpoints, stops the solved runs, writes summaries."""
    results = None
    if evaluate_now and self.running():
      results = self.evaluate_and_log(step)
    self.checkpoint(step, results)
    if results is not None and self.level is not None:
      self.stop_solved(step, results["eval"])
    self.write_summaries()

  def stop_solved(self, step: int, valid: list[dict]) -> None:
    """Freezes the runs whose validation headline metric reaches the solved
    level: their test splits are evaluated now, at `step`, and they complete."""
    task = self.exp.task
    solved = [n for n, t in enumerate(self.trials)
              if t.status == "running" and t.start < step
              and scores.reaches(valid[n].get(task.metric), self.level, task.mode)]
    if not solved:
      return
    tests = self.evaluate("test")
    for n in solved:
      t = self.trials[n]
      t.notes["stopped"] = dict(step=step, why="solved", metric=task.metric,
                                value=valid[n][task.metric], level=self.level)
      t.complete(step, tests, n)
      logging.info("%s is solved at step %d: it stops.", t.workdir, step)

  def evaluate(self, stream: str) -> dict:
    """{split: [metrics of each run]} of the splits of `stream` ("eval" or
    "test"): `train.eval_batches` batches of each run's stream, or for the test
    splits of a dataset task the whole split, each example once."""
    out = {}
    for split in stepping.eval_splits(self.exp, stream):
      exact = stream == "test" and hasattr(split.task, "examples")
      if not exact and split.name not in self.batch_fns:
        self.batch_fns[split.name] = stepping.make_group_batch_fn(
            self.exp, self.seeds, split.stream, split.task)
      batches = stepping.split_batches(self.exp, split, self.seeds, exact,
                                       batch_fn=self.batch_fns.get(split.name))
      out[split.name] = stepping.evaluate_runs(
          self.eval_steps[split.eval_set], self.state.params, batches)[0]
    return out

  def checkpoint(self, step: int, results: dict | None = None) -> None:
    for n, t in enumerate(self.trials):
      if t.status == "running" and t.saved < step:
        eval_metrics = results["eval"][n] if results else None
        checkpoints.save(t.mngr, step, self.unstack(self.state, n), eval_metrics)
        t.saved = step

  def write_summaries(self) -> None:
    self.loop_time = time.time() - self.t0
    for t in self.trials:
      t.write_summary(self)

  def close(self) -> None:
    for t in self.trials:
      t.close()


@contextlib.contextmanager
def _stop_on_signals():
  """While training, SIGTERM and SIGINT ask the loop to stop at the next step
  boundary (it checkpoints and records `interrupted`). A second Ctrl-C acts as
  usual; further SIGTERMs are ignored, so the checkpoint is always written (a
  sweep's group gets one parent-death SIGTERM per exiting thread of its runner).
  `stop["signal"]` is the number of the first signal received, if any. Only
  the main thread takes signals; elsewhere this installs nothing."""
  stop = {"signal": None}

  def handler(signum, frame):
    del frame
    if stop["signal"] is None:
      stop["signal"] = signum
      logging.warning("Received %s: stopping at the next step boundary.",
                      signal.Signals(signum).name)
    if signum == signal.SIGINT:
      signal.signal(signum, old[signum])
  old = ({s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
         if threading.current_thread() is threading.main_thread() else {})
  try:
    yield stop
  finally:
    for signum, previous in old.items():
      signal.signal(signum, previous)


def exit_status(summary: dict) -> int:
  """launch.py's exit status for a run: 0 completed, 130 interrupted (rerun
  to resume: said on stderr), 1 otherwise."""
  if summary["status"] == "interrupted":
    print(f"interrupted by {summary['interrupted_by']} at step {summary['step']}; "
          "rerun the same command to resume.", file=sys.stderr)
  return {"completed": 0, "interrupted": 130}.get(summary["status"], 1)


def evaluate_checkpoint(workdir: str, step: int | None = None,
                        eval_batches: int | None = None,
                        config: ml_collections.ConfigDict | None = None) -> dict:
  """Restores the best (or `step`) checkpoint of `workdir` and evaluates it on the
  validation and test streams, without training. `eval_batches` overrides the
  run's `train.eval_batches` (see `stepping.evaluate_split`); the result says
  how many examples each split evaluated. A `config` given must be the run's
  (`run_files.check`). Writes DIR/eval_<step>.json."""
  if config is not None:
    run_files.check(workdir, config)
  if eval_batches is not None and eval_batches < 1:
    raise ConfigError(f"--eval_batches={eval_batches} must be positive.")
  restored = experiment.load(workdir, step)
  exp = experiment.build(restored.config)
  splits = stepping.eval_splits(exp, "eval") + stepping.eval_splits(exp, "test")
  evaluated = {split.name: stepping.evaluate_split(exp, restored.params, split,
                                          num_batches=eval_batches)
               for split in splits}
  result = {"step": restored.step,
            **{split: metrics for split, (metrics, _) in evaluated.items()},
            "examples": {split: n for split, (_, n) in evaluated.items()}}
  if parallel.is_writer():
    run_files.write_json(
        os.path.join(workdir, f"eval_{restored.step}.json"), result)
  return result
