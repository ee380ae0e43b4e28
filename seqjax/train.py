"""Training and evaluation: one pure `train_step`, jitted once, shared by every
model and task, so comparisons between architectures are fair by construction;
the loop that runs it, evaluates, checkpoints and writes the run's files.

What it runs on (the Experiment, its random streams, optimizer and state layout)
is built by `seqjax.experiment`; its names are imported here by name.
"""

import contextlib
import json
import math
import os
import resource
import signal
import threading
import time
from typing import Any, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as onp
import optax

from seqjax import checkpoints
from seqjax import metric_log
from seqjax import parallel
from seqjax import precision
from seqjax import run_files
from seqjax import run_lock
from seqjax.errors import ConfigError
from seqjax.experiment import abstract_state
from seqjax.experiment import build
from seqjax.experiment import DATA_SPLITS
from seqjax.experiment import DROPOUT
from seqjax.experiment import Experiment
from seqjax.experiment import GROUPABLE
from seqjax.experiment import HYPER_KEYS
from seqjax.experiment import hyperparameters
from seqjax.experiment import INIT
from seqjax.experiment import init_fn
from seqjax.experiment import init_state
from seqjax.experiment import load
from seqjax.experiment import make_optimizer
from seqjax.experiment import model_inputs
from seqjax.experiment import SPLITS
from seqjax.experiment import state_shardings
from seqjax.experiment import TEST
from seqjax.experiment import TRAIN
from seqjax.experiment import TrainState
from seqjax.tasks import base

def scoring(batch: dict) -> tuple[dict, dict]:
  """(model keyword arguments, the batch outputs are scored against). A batch
  with `positions` [B, P] (the few positions its task scores) asks the model
  for outputs there only and is scored against its targets and mask gathered
  there: the loss and its gradient are those of the full outputs (tested), at
  P instead of L rows of the output layer."""
  if "positions" not in batch:
    return {}, batch
  return {"positions": batch["positions"]}, base.scored(batch["positions"], batch)


def _step_fn(exp: Experiment):
  """`step(state, batch, hp, dropout_key) -> (state, metrics)` of one run, with
  its hyperparameters `hp` (see `HYPER_KEYS`) as values or traced arrays."""
  dtype = precision.DTYPES[exp.train.compute_dtype]

  def step(state: TrainState, batch: dict, hp: dict, dropout_key):
    tx, schedule = make_optimizer(exp.train, hp)
    rngs = {"dropout": jax.random.fold_in(dropout_key, state.step)}

    at, target = scoring(batch)

    def loss_fn(params):
      outputs = exp.model.apply(
          {"params": precision.cast_params(params, dtype)},
          *model_inputs(precision.cast_inputs(batch, dtype)), train=True, rngs=rngs,
          **at)
      return base.loss_fn(exp.task.loss, outputs, target), outputs

    (loss, outputs), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = exp.task.metrics(outputs, target)
    metrics.update(loss=loss, grad_norm=optax.tree.norm(grads),
                   param_norm=optax.tree.norm(params),
                   update_norm=optax.tree.norm(updates),
                   learning_rate=schedule(state.step))
    return TrainState(state.step + 1, params, opt_state), metrics
  return step


def make_train_step(exp: Experiment):
  """Returns `train_step(state, batch) -> (state, metrics)`, jitted, donating state."""
  step, hp, dropout_key = _step_fn(exp), hyperparameters(exp.train), exp.key(DROPOUT)
  shardings = state_shardings(exp)
  return jax.jit(lambda state, batch: step(state, batch, hp, dropout_key),
                 donate_argnums=0,
                 in_shardings=(shardings, parallel.batch_sharding(exp.mesh)),
                 out_shardings=(shardings, parallel.replicated(exp.mesh)))


def make_group_step(exp: Experiment):
  """The train step of a group of N runs, vmapped over a leading run axis:

    step(state_N, alive_N, batch_N, hp_N, dropout_key_N, started_N)
        -> (state_N, alive_N, metrics_N)

  Run n's state advances only while it has `started` (the group has reached
  the step it resumes from) and is `alive` (no non-finite loss yet); otherwise
  it is kept as it was (frozen). Jitted, donating state and alive.
  """
  step = jax.vmap(_step_fn(exp))

  def group_step(state, alive, batch, hp, dropout_key, started):
    new, metrics = step(state, batch, hp, dropout_key)
    alive = alive & ~(started & ~jnp.isfinite(metrics["loss"]))
    keep = started & alive
    state = jax.tree_util.tree_map(
        lambda n, o: jnp.where(keep.reshape(keep.shape + (1,) * (n.ndim - 1)),
                               n, o), new, state)
    return state, alive, metrics
  return jax.jit(group_step, donate_argnums=(0, 1))


def _eval_fn(exp: Experiment, task):
  dtype = precision.DTYPES[exp.train.compute_dtype]

  def eval_step(params, batch):
    variables = {"params": precision.cast_params(params, dtype)}
    inputs = model_inputs(precision.cast_inputs(batch, dtype))
    at, target = scoring(batch)
    metrics = task.metrics(exp.model.apply(variables, *inputs, **at), target)
    if hasattr(task, "generation_metrics"):
      tokens_BxT = exp.model.apply(variables, inputs[0], method="generate",
                                   max_length=batch["targets"].shape[1])
      metrics.update(task.generation_metrics(tokens_BxT, batch))
    return metrics
  return eval_step


def make_eval_step(exp: Experiment, task=None, group: bool = False):
  """`eval_step(params, batch) -> metrics` of `task` (default: the experiment's);
  with `group`, vmapped over a leading run axis of params and batch.

  When the task defines `generation_metrics(tokens_BxT, batch)` (seq2seq), the
  model also decodes greedily, `model.generate(inputs, max_length=T)`, and those
  metrics join the teacher-forced ones.
  """
  eval_step = _eval_fn(exp, task or exp.task)
  if group:
    return jax.jit(jax.vmap(eval_step))
  return jax.jit(eval_step, in_shardings=(state_shardings(exp).params,
                                          parallel.batch_sharding(exp.mesh)),
                 out_shardings=parallel.replicated(exp.mesh))


def stream_keys(seeds, *path: int) -> jax.Array:
  """The keys `Experiment.key(*path)` of runs with seeds `seeds` [N]: [N] keys."""
  def one(seed):
    key = jax.random.key(seed)
    for p in path:
      key = jax.random.fold_in(key, p)
    return key
  return jax.vmap(one)(jax.device_put(onp.asarray(seeds, onp.int32)))


def make_batch_fn(exp: Experiment, stream: int, task=None, seeds=None):
  """`batch(i)` for stream `stream`, generated on the devices, each generating
  only its own slice of the (global) batch.

  With `seeds` (a group of runs), `batch(i)` stacks the batch i of the stream of
  each seed: [N, B, ...], on one device.

  A dataset task (one with `data(split)` and `sample(data, key, batch_size)`)
  samples the split of the stream (train, eval or test); its arrays are an
  argument of the jitted function, not constants compiled into it.
  """
  task = task or exp.task
  size = exp.train.batch_size
  if hasattr(task, "sample"):
    data = task.data(DATA_SPLITS[stream])
    one = lambda root, i, data: task.sample(data, jax.random.fold_in(root, i), size)
  else:
    data = None
    one = lambda root, i, data: task.batch(jax.random.fold_in(root, i), size)
  if seeds is None:
    out = parallel.batch_sharding(exp.mesh)
    data = jax.device_put(data, parallel.replicated(exp.mesh))
    fn, roots = jax.jit(one, out_shardings=out), exp.key(stream)
  else:
    fn = jax.jit(jax.vmap(one, in_axes=(0, None, None)))
    roots = stream_keys(seeds, stream)
  return lambda i: fn(roots, i, data)


class Split(NamedTuple):
  """A held-out evaluation split, built once by `eval_splits` and passed down."""
  name: str      # its name in metrics.jsonl, summary.json, results: "eval", "test_dense"
  stream: int    # VALID or TEST: the random stream (and dataset split) it draws from
  eval_set: str  # its task's key in the task's `eval_sets`; "" for the task itself
  task: Any      # the task it evaluates


def eval_splits(exp: Experiment, stream: str) -> list[Split]:
  """Evaluation splits of `stream` ("eval" or "test"): the stream itself, then
  `<stream>_<name>` for each extra evaluation set of the task (`eval_sets`)."""
  sets = getattr(exp.task, "eval_sets", {})
  return ([Split(stream, SPLITS[stream], "", exp.task)] +
          [Split(f"{stream}_{name}", SPLITS[stream], name, task)
           for name, task in sets.items()])


def find_split(exp: Experiment, name: str) -> Split:
  """The split logged as `name` (one of `eval_splits` of "eval" or "test")."""
  splits = {s.name: s for s in eval_splits(exp, "eval") + eval_splits(exp, "test")}
  if name not in splits:
    raise ValueError(f"Unknown split {name!r}; valid: {', '.join(splits)}.")
  return splits[name]


def average_batches(eval_step, params, batches) -> tuple[dict, int]:
  """(mean metrics, examples) of `eval_step` over `batches`, pairs (batch, real
  examples in it): the plain mean of equal batches, else weighted by the real
  examples. Values are numpy: scalars, or [N] for a group of runs."""
  totals, weights = [], []
  for batch, real in batches:
    totals.append(eval_step(params, batch))
    weights.append(real)
  totals = jax.device_get(totals)
  if len(set(weights)) == 1:  # equal batches: the plain mean
    return ({k: sum(t[k] for t in totals) / len(totals) for k in totals[0]},
            sum(weights))
  return ({k: sum(t[k] * w for t, w in zip(totals, weights)) / sum(weights)
           for k in totals[0]}, sum(weights))


def evaluate(exp: Experiment, params, split: Split | str = "eval", eval_step=None,
             batch_fn=None) -> dict[str, float]:
  """Mean metrics of a held-out split (a `Split`, or its name): over
  `train.eval_batches` fixed batches, or for a dataset task without `batch_fn`,
  over the whole split (`evaluate_split`)."""
  return evaluate_split(exp, params, split, eval_step, batch_fn)[0]


def evaluate_split(exp: Experiment, params, split: Split | str = "eval",
                   eval_step=None, batch_fn=None, num_batches: int | None = None
                   ) -> tuple[dict[str, float], int]:
  """(mean metrics, number of examples evaluated) of a held-out split (a
  `Split`, or its name).

  A generated task (or any task given `batch_fn`): `num_batches` (default
  `train.eval_batches`) fixed batches. A dataset task: one pass over its split
  in order, every example once (the first `num_batches` batches if given); the
  last batch is filled up by repeating an example whose weight in `mask` is 0,
  and each batch's metrics weigh by its real examples, so the means are exact
  for the per-example metrics of a classifier.
  """
  if isinstance(split, str):
    split = find_split(exp, split)
  task, stream = split.task, split.stream
  eval_step = eval_step or make_eval_step(exp, task)
  if batch_fn is None and hasattr(task, "examples"):
    batches = exact_batches(exp, stream, task, num_batches)
  else:
    batch_fn = batch_fn or make_batch_fn(exp, stream, task)
    size = exp.train.batch_size
    batches = ((batch_fn(i), size)
               for i in range(num_batches or exp.train.eval_batches))
  means, examples = average_batches(eval_step, params, batches)
  return {k: float(v) for k, v in means.items()}, examples


def exact_batches(exp: Experiment, stream: int, task, num_batches: int | None):
  """(batch, real examples) over the split of `stream` in order, every example
  once; the last batch is filled up with masked copies of the last example."""
  data = jax.device_put(task.data(DATA_SPLITS[stream]),
                        parallel.replicated(exp.mesh))
  n, size = int(data["labels"].shape[0]), exp.train.batch_size

  def fetch(start, data):
    index_B = start + jnp.arange(size)
    batch = task.examples(data, jnp.minimum(index_B, n - 1))
    return dict(batch, mask=batch["mask"] * (index_B < n)[:, None])

  fetch = jax.jit(fetch, out_shardings=parallel.batch_sharding(exp.mesh))
  starts = range(0, n, size)[:num_batches]
  return ((fetch(start, data), min(size, n - start)) for start in starts)


def peak_memory_mb() -> float:
  """Peak memory of the run: the device's peak bytes in use where the backend
  reports it (GPU, TPU), else the process's peak resident set size (CPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_memory_bytes() -> int:
  """What one device can hold: its memory limit where the backend reports it
  (GPU, TPU), else the machine's physical memory (CPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def compiled_temp_mb(compiled) -> float | None:
  """XLA's temporary buffers of a compiled step (activations, workspace) in MB,
  a per-step memory cost independent of the process; None where the backend
  gives no memory analysis."""
  temp = getattr(compiled.memory_analysis(), "temp_size_in_bytes", None)
  return None if temp is None else temp / 2**20


def check_fits(compiled, exp: Experiment, runs: int = 1) -> None:
  """Refuses a compiled train step whose buffers (arguments, outputs and
  temporaries, as XLA reports them) exceed one device's memory."""
  analysis = compiled.memory_analysis()
  if analysis is None:
    return
  need = sum(getattr(analysis, f"{k}_size_in_bytes", 0) or 0
             for k in ("argument", "output", "temp"))
  need -= getattr(analysis, "alias_size_in_bytes", 0) or 0
  have = device_memory_bytes()
  if need > have:
    io = exp.task.io
    raise ConfigError(
        f"The train step needs {need / 2**30:.3g} GiB of device memory and the "
        f"device has {have / 2**30:.3g} GiB: train.batch_size="
        f"{exp.train.batch_size}, sequence length {io.length}, model "
        f"{exp.config.model.name} with {_param_count(exp):,} parameters"
        f"{f', {runs} runs in a group' if runs > 1 else ''}. Reduce the batch, "
        "the length or the model.")


def _param_count(exp: Experiment) -> int:
  return num_params(jax.eval_shape(init_fn(exp), exp.key(INIT)).params)


def num_params(params) -> int:
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


def program_key(config: ml_collections.ConfigDict) -> str:
  """What the compiled program of a run depends on: its config without the
  `GROUPABLE` train keys (clipping or not is part of the program). Runs with
  equal keys can train together as one group."""
  d = run_files.config_dict(config)
  train_cfg = {k: v for k, v in d["train"].items() if k not in GROUPABLE}
  clips = d["train"]["grad_clip"] > 0
  return json.dumps({**d, "train": train_cfg, "clips": clips}, sort_keys=True)


def _same_program(configs_: list) -> None:
  if len({program_key(c) for c in configs_}) > 1:
    raise ValueError("A group's configs must differ only in train."
                     f"{{{', '.join(GROUPABLE)}}}.")


FINAL = ("completed", "diverged")


class _Run:
  """One run of a group while it trains: its lock, log, checkpoints, summary."""

  def __init__(self, exp: Experiment, workdir: str, progress: bool):
    self.exp, self.workdir, self.progress = exp, workdir, progress
    self.lock = run_lock.RunLock(workdir)
    self.previous = run_files.read_json(os.path.join(workdir, "summary.json"))
    self.summary = {}
    self.status = "pending"

  @property
  def finished(self) -> bool:
    return bool(self.previous) and self.previous.get("status") in FINAL

  def open(self, writer: bool, abstract) -> None:
    """Creates the files, restores the newest good checkpoint, opens the log."""
    exp, tc = self.exp, self.exp.train
    self.writer = writer
    if writer:
      run_files.init(self.workdir, exp.config)
    self.mngr = checkpoints.manager(self.workdir, tc.keep_checkpoints,
                                    exp.task.metric, exp.task.mode)
    self.state, self.start = checkpoints.restore_latest(self.mngr, abstract)
    if self.state is not None:
      logging.info("Resuming from step %d in %s", self.start, self.workdir)
    self.log = metric_log.MetricLog(self.workdir, self.start, tc.steps,
                                    self.progress and writer, write=writer)
    self.step, self.saved, self.status = self.start, self.start, "running"
    before = self.previous or {}
    self.train_steps = before.get("train_steps", 0)
    self.train_time_s = before.get("train_time_s", 0.0)
    self.wall_before = before.get("wall_time_s", 0.0) or 0.0

  def write_summary(self, launch_start: float, loop_steps: int, loop_time: float,
                    extra: dict) -> dict:
    """DIR/summary.json: the status and what the log and this launch measured.

    Times accumulate over launches: `wall_time_s` is the sum of every launch's,
    `steps_per_s` counts every step trained (re-trained ones too) over the time
    spent in training loops.
    """
    task = self.exp.task
    trained = self.step - self.start
    share = loop_time * trained / loop_steps if loop_steps else 0.0
    steps, seconds = self.train_steps + trained, self.train_time_s + share
    summary = dict(
        status=self.status, step=self.step, **base.describe(task),
        num_params=self.num_params,
        group_size=self.group_size, train_steps=steps, train_time_s=seconds,
        steps_per_s=steps / seconds if seconds > 0 else None,
        wall_time_s=self.wall_before + time.time() - launch_start,
        peak_memory_mb=peak_memory_mb(), **extra, **self.summary)
    summary.update(_best(self.log.records, task))
    if self.writer:
      run_files.write_json(os.path.join(self.workdir, "summary.json"), summary)
    return summary

  def close(self) -> None:
    if hasattr(self, "mngr"):
      self.mngr.wait_until_finished()
      self.mngr.close()
      self.log.close()
    self.lock.release()


@contextlib.contextmanager
def _stop_on_signals():
  """While training, SIGTERM and SIGINT ask the loop to stop at the next step
  boundary (it checkpoints and records `interrupted`). A second Ctrl-C acts as
  usual; further SIGTERMs are ignored, so the checkpoint is always written (a
  sweep's group gets one parent-death SIGTERM per exiting thread of its runner).
  `stop["signal"]` is the number of the first signal received, if any."""
  stop = {"signal": None}
  if threading.current_thread() is not threading.main_thread():
    yield stop
    return
  old = {}

  def handler(signum, frame):
    del frame
    if stop["signal"] is None:
      stop["signal"] = signum
      logging.warning("Received %s: stopping at the next step boundary.",
                      signal.Signals(signum).name)
    if signum == signal.SIGINT:
      signal.signal(signum, old[signum])
  for signum in (signal.SIGTERM, signal.SIGINT):
    old[signum] = signal.signal(signum, handler)
  try:
    yield stop
  finally:
    for signum, previous in old.items():
      signal.signal(signum, previous)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       progress: bool = True) -> dict:
  """Trains, evaluates and checkpoints; resumes if `workdir` has a checkpoint.

  A finished run (completed or diverged) is left as it is. Returns the summary
  also written to DIR/summary.json.
  """
  return train_trials([config], [workdir], progress=progress, group=False)[0]


def train_trials(configs_: list, workdirs: list[str], progress: bool = False,
                 group: bool = True) -> list[dict]:
  """Trains runs whose configs differ only in `GROUPABLE` train keys (seed,
  learning rate, ...) as one program, each in its own workdir with the files of
  a single run. Returns their summaries.

  With `group`, parameters and optimizer state carry a leading run axis and the
  steps are vmapped over it, on one device; each run keeps its own keys, data
  and hyperparameters, so it computes what a run of its config alone computes
  (to float32 rounding). A run that diverges is frozen and recorded while the
  others train on. Finished runs are skipped; runs whose workdir another live
  process holds are skipped with status `held`. Without `group` (one run, the
  mesh of `config.mesh`), a held workdir is an error.
  """
  exps = [build(c) for c in configs_]
  _same_program(configs_)
  for config, workdir in zip(configs_, workdirs):
    run_files.check(workdir, config)
  runs = [_Run(e, w, progress and not group) for e, w in zip(exps, workdirs)]
  todo = [r for r in runs if not r.finished]
  for r in runs:
    if r.finished:
      logging.warning("%s holds a finished run (%s at step %s); nothing to do.",
                      r.workdir, r.previous["status"], r.previous.get("step"))
  if not todo:
    return [r.previous for r in runs]
  writer = parallel.is_writer()  # of several processes, the first holds locks
  todo = [r for r in todo if not (writer and _held(r, group))]
  program = None
  try:
    while todo:  # compiled before any file is written: a step too big is refused
      if program is None or program.runs != todo:
        program = _Program(todo[0].exp, todo, group)
        program.compile_abstract()
      lost = [r for r in todo if writer and not r.lock.acquire()]
      if not lost:
        break
      for r in todo:  # another process took some in between: compile again
        r.lock.release()
      for r in lost:
        _held(r, group, taken=True)
      todo = [r for r in todo if r not in lost]
    if todo:
      with _stop_on_signals() as stop:
        program.train(stop)
  finally:
    for r in todo:
      r.close()
  return [r.previous if r.finished else
          (dict(status="held", **r.summary) if r.status == "held" else r.result)
          for r in runs]


def _held(r: _Run, group: bool, taken: bool = False) -> bool:
  """True (and the run marked `held`) if another live process holds the run's
  workdir; without `group` that is an error. `taken`: the lock could not be
  acquired, so it is held even if its holder looked gone a moment ago."""
  info = run_lock.holder(r.workdir)
  if not taken and (info is None or info["live"] is False):
    return False
  message = (f"--workdir={r.workdir!r} is being trained by "
             f"{run_lock.describe(info) if info else 'another process'}; wait "
             "for it to finish or stop it, then rerun.")
  if not group:
    raise ConfigError(message)
  logging.warning("%s", message)
  r.status, r.summary = "held", dict(error=message, holder=info)
  return True


class _Program:
  """The compiled steps of N runs that share one program, and the loop."""

  def __init__(self, exp: Experiment, runs: list[_Run], group: bool):
    self.exp, self.runs, self.group = exp, runs, group
    if not group and len(runs) != 1:
      raise ValueError("Without `group`, train one run at a time.")
    self.seeds = [r.exp.train.seed for r in runs]
    self.hp = {k: jax.device_put(onp.asarray(
        [hyperparameters(r.exp.train)[k] for r in runs], onp.float32))
               for k in HYPER_KEYS}

  def _abstract_args(self):
    exp, n = self.exp, len(self.runs)
    batch = jax.eval_shape(lambda: exp.task.batch(exp.key(TRAIN, 0),
                                                  exp.train.batch_size))
    if not self.group:
      return abstract_state(exp), batch
    stack = lambda x: jax.ShapeDtypeStruct((n,) + x.shape, x.dtype)
    state = jax.tree_util.tree_map(
        stack, jax.eval_shape(init_fn(exp), exp.key(INIT)))
    keys = jax.eval_shape(lambda: stream_keys(self.seeds, DROPOUT))
    flags = jax.ShapeDtypeStruct((n,), jnp.bool_)
    return (state, flags, jax.tree_util.tree_map(stack, batch),
            jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                   self.hp), keys, flags)

  def compile_abstract(self) -> None:
    """Compiles the train step from shapes alone and checks that it fits."""
    step = make_group_step(self.exp) if self.group else make_train_step(self.exp)
    t0 = time.time()
    self.compiled = step.lower(*self._abstract_args()).compile()
    self.compile_s = time.time() - t0
    check_fits(self.compiled, self.exp, len(self.runs))

  def train(self, stop: dict) -> None:
    exp, runs = self.exp, self.runs
    launch_start = time.time()
    writer = parallel.is_writer()
    abstract = abstract_state(exp)
    for r in runs:
      r.open(writer, abstract)
    self._init_carry()
    n_params = num_params(abstract.params)
    for r in runs:
      r.num_params, r.group_size = n_params, len(runs) if self.group else 1
      r.state = None  # the carry holds it now
    start = min(r.start for r in runs)
    starts = onp.asarray([r.start for r in runs])
    extra = dict(step_temp_mb=compiled_temp_mb(self.compiled),
                 compile_s=self.compile_s)
    self.loop_steps, self.loop_time = 0, 0.0
    try:
      self._loop(start, starts, stop, launch_start, extra)
    except Exception as e:
      for r in runs:
        if r.status == "running":
          r.status, r.summary["error"] = "failed", f"{type(e).__name__}: {e}"
          r.result = r.write_summary(launch_start, self.loop_steps,
                                     self.loop_time, extra)
      raise

  def _init_carry(self) -> None:
    exp, runs = self.exp, self.runs
    if not self.group:
      r = runs[0]
      self.carry = r.state if r.state is not None else init_state(exp)
      return
    init = jax.jit(init_fn(exp))
    states = [r.state if r.state is not None else init(r.exp.key(INIT))
              for r in runs]
    state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
    self.carry = (state, jnp.ones(len(runs), jnp.bool_))
    self.dropout_keys = stream_keys(self.seeds, DROPOUT)

  def _params(self):
    return self.carry[0].params if self.group else self.carry.params

  def trial_state(self, n: int):
    if not self.group:
      return self.carry
    return jax.tree_util.tree_map(lambda x: x[n], self.carry[0])

  def _step(self, batch, started):
    if not self.group:
      self.carry, metrics = self.compiled(self.carry, batch)
      return metrics
    state, alive, metrics = self.compiled(*self.carry, batch, self.hp,
                                          self.dropout_keys, jax.device_put(started))
    self.carry = (state, alive)
    return metrics

  def _evaluators(self, splits: list[Split]) -> dict:
    """{split name: (eval step, batch function)} of each split."""
    exp, seeds = self.exp, self.seeds if self.group else None
    return {split.name: (make_eval_step(exp, split.task, self.group),
                         make_batch_fn(exp, split.stream, split.task, seeds))
            for split in splits}

  def _evaluate(self, evaluators: dict) -> dict:
    """{split: [per-run metric dicts]} over `train.eval_batches` batches."""
    out = {}
    for split, (eval_step, batch_fn) in evaluators.items():
      size, count = self.exp.train.batch_size, self.exp.train.eval_batches
      means, _ = average_batches(eval_step, self._params(),
                                 ((batch_fn(i), size) for i in range(count)))
      out[split] = [{k: float(onp.reshape(v, -1)[n]) for k, v in means.items()}
                    for n in range(len(self.runs))]
    return out

  def _test(self, split: Split, eval_step) -> list[dict]:
    """Per-run metrics of a test split: a dataset task's whole split, each
    example once (`exact_batches`), else `train.eval_batches` sampled batches."""
    exp, task = self.exp, split.task
    if not hasattr(task, "examples"):
      seeds = self.seeds if self.group else None
      batch_fn = make_batch_fn(exp, split.stream, task, seeds)
      return self._evaluate({split.name: (eval_step, batch_fn)})[split.name]
    if self.group:  # the same batches for every run
      eval_step = jax.jit(jax.vmap(_eval_fn(exp, task), in_axes=(0, None)))
    means, examples = average_batches(eval_step, self._params(),
                                      exact_batches(exp, split.stream, task, None))
    return [{**{k: float(onp.reshape(v, -1)[n]) for k, v in means.items()},
             "examples": examples} for n in range(len(self.runs))]

  def _loop(self, start: int, starts, stop: dict, launch_start: float,
            extra: dict) -> None:
    exp, runs, tc, task = self.exp, self.runs, self.exp.train, self.exp.task
    batch_fn = make_batch_fn(exp, TRAIN, seeds=self.seeds if self.group else None)
    valid_splits = eval_splits(exp, "eval")
    valid = self._evaluators(valid_splits)
    pending = None  # (step, metrics) of the last step, fetched after the next one
    tick, tick_step = time.time(), start
    t0 = time.time()
    active = lambda: [r for r in runs if r.status == "running"]

    def fetch(step, metrics):
      nonlocal tick, tick_step
      metrics = jax.device_get(metrics)
      log_now = step % tc.log_every == 0 or step == tc.steps
      if log_now:
        now = time.time()
        rate = (step - tick_step) / max(now - tick, 1e-9)
        tick, tick_step = now, step
      for n, r in enumerate(runs):
        if r.status != "running" or r.start >= step:
          continue
        values = {k: onp.reshape(v, -1)[n] for k, v in metrics.items()}
        if not math.isfinite(values["loss"]):
          logging.warning("Loss is not finite at step %d in %s: the run "
                          "diverged.", step, r.workdir)
          r.status, r.step = "diverged", step
          r.summary["diverged_at"] = step
          continue
        r.step = step
        if log_now:
          r.log.write(step, "train", dict(values, steps_per_s=rate))
        shown = {task.metric: values[task.metric]} if task.metric in values else {}
        r.log.progress(step, loss=values["loss"], **shown)

    def checkpoint(step, results=None):
      for n, r in enumerate(runs):
        if r.status == "running" and r.saved < step:
          eval_metrics = results["eval"][n] if results else None
          checkpoints.save(r.mngr, step, self.trial_state(n), eval_metrics)
          r.saved = step

    def summaries():
      self.loop_time = time.time() - t0
      for r in runs:
        r.result = r.write_summary(launch_start, self.loop_steps, self.loop_time,
                                   extra)

    # The steps move nothing between host and device but on purpose (big_vision
    # sets the same guard): metrics come back by `jax.device_get` a step late,
    # and evaluating, checkpointing and writing the summaries fetch.
    with jax.transfer_guard("disallow"):
      for i in range(start, tc.steps):
        if stop["signal"] is not None or not active():
          break
        # Making the batch places its key and index on the mesh (on several
        # devices or hosts, a copy JAX makes when the generator runs): allowed;
        # the step itself moves nothing.
        with jax.transfer_guard("allow"):
          batch = batch_fn(jax.device_put(i))
        metrics = self._step(batch, starts <= i)
        self.loop_steps += 1
        if pending is not None:
          fetch(*pending)
        pending, step = (i + 1, metrics), i + 1
        evaluate_now = step % tc.eval_every == 0 or step == tc.steps
        if evaluate_now or step % tc.checkpoint_every == 0:
          fetch(*pending)
          pending = None
          with jax.transfer_guard("allow"):
            results = None
            if evaluate_now and active():
              results = self._evaluate(valid)
              for n, r in enumerate(runs):
                if r.status == "running" and r.start < step:  # not one waiting
                  for split, per_run in results.items():   # for its resume step
                    r.log.write(step, split, per_run[n])
            checkpoint(step, results)
            summaries()
      if pending is not None:
        fetch(*pending)
    if stop["signal"] is not None:
      name = signal.Signals(stop["signal"]).name
      for r in active():
        checkpoint(r.step)
        r.status = "interrupted"
        r.summary["interrupted_by"] = name
      summaries()
      return
    if active():  # the test splits, with the validation splits' compiled steps
      valid_steps = {s.eval_set: valid[s.name][0] for s in valid_splits}
      tests = {split.name: self._test(split, valid_steps[split.eval_set])
               for split in eval_splits(exp, "test")}
      for n, r in enumerate(runs):
        if r.status == "running":
          for split, per_run in tests.items():
            r.summary[split] = per_run[n]
            r.log.write(tc.steps, split, per_run[n])
          r.status = "completed"
    summaries()


def _best(records: list[dict], task) -> dict:
  """`final` and `best` eval metrics, from the log (which survives resumes)."""
  evals = [r for r in records if r["split"] == "eval"]
  if not evals:
    return {}
  pick = max if task.mode == "max" else min
  strip = lambda r: {k: v for k, v in r.items() if k not in ("split",)}
  # Ties go to the latest step, as in the checkpoint manager's BestN policy.
  # A metric that was not finite is null in a file read back: never the best.
  worst = -math.inf if task.mode == "max" else math.inf
  best = pick(reversed(evals), key=lambda r: _or(r[task.metric], worst))
  return dict(final=strip(evals[-1]), best=strip(best))


def _or(value, default):
  return default if value is None or not math.isfinite(value) else value


def evaluate_checkpoint(workdir: str, step: int | None = None,
                        eval_batches: int | None = None) -> dict:
  """Restores the best (or `step`) checkpoint of `workdir` and evaluates it on the
  validation and test streams, without training. `eval_batches` overrides the
  run's `train.eval_batches` (see `evaluate_split`); the result says how many
  examples each split evaluated. Writes DIR/eval_<step>.json."""
  if eval_batches is not None and eval_batches < 1:
    raise ConfigError(f"--eval_batches={eval_batches} must be positive.")
  restored = load(workdir, step)
  exp = build(restored.config)
  splits = eval_splits(exp, "eval") + eval_splits(exp, "test")
  evaluated = {split.name: evaluate_split(exp, restored.params, split,
                                          num_batches=eval_batches)
               for split in splits}
  result = {"step": restored.step,
            **{split: metrics for split, (metrics, _) in evaluated.items()},
            "examples": {split: n for split, (_, n) in evaluated.items()}}
  if parallel.is_writer():
    run_files.write_json(
        os.path.join(workdir, f"eval_{restored.step}.json"), result)
  return result
