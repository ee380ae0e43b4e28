"""The step: one pure `train_step`, jitted once, shared by every model and task,
so comparisons between architectures are fair by construction; the step of a
trial group of N runs (the one the loop runs, N >= 1); the evaluation step, the
batches of every stream, the held-out splits, and the memory checks of a
compiled step. `seqjax.train` runs them in its loop.

Group arrays carry a leading run axis N that is never sharded: a state leaf
[N, ...] keeps the layout on the mesh (`config.mesh`) that the leaf of one run
has, and a batch [N, B, ...] is split over `data` along B. So a run on several
devices is a group of one whose batch is sharded.
"""

import os
import resource
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as onp
import optax

from seqjax import experiment
from seqjax import parallel
from seqjax import precision
from seqjax.errors import ConfigError
from seqjax.experiment import Experiment
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
  its hyperparameters `hp` (see `experiment.HYPER_KEYS`) as values or traced
  arrays."""
  dtype = precision.DTYPES[exp.train.compute_dtype]

  def step(state: experiment.TrainState, batch: dict, hp: dict, dropout_key):
    tx, schedule = experiment.make_optimizer(exp.train, hp)
    rngs = {"dropout": jax.random.fold_in(dropout_key, state.step)}
    at, target = scoring(batch)

    def loss_fn(params):
      outputs = exp.model.apply(
          {"params": precision.cast_params(params, dtype)},
          *experiment.model_inputs(precision.cast_inputs(batch, dtype)),
          train=True, rngs=rngs, **at)
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
    return experiment.TrainState(state.step + 1, params, opt_state), metrics
  return step


def make_train_step(exp: Experiment):
  """Returns `train_step(state, batch) -> (state, metrics)` of one run, jitted,
  donating state, its hyperparameters compiled in (tests, benchmarks)."""
  step, hp = _step_fn(exp), experiment.hyperparameters(exp.train)
  dropout_key, shardings = exp.key(experiment.DROPOUT), experiment.state_shardings(exp)
  return jax.jit(lambda state, batch: step(state, batch, hp, dropout_key),
                 donate_argnums=0,
                 in_shardings=(shardings, parallel.batch_sharding(exp.mesh)),
                 out_shardings=(shardings, parallel.replicated(exp.mesh)))


def over_runs(fn):
  """`fn` mapped over the leading run axis of all its arguments: `jax.vmap`,
  except that a group of one calls `fn` on its only run, so that XLA compiles
  the program of a run alone (vmap over one run changes the order of some of
  a transformer's sums: 1.5e-5 mean parameter difference after 6 steps).
  The number of runs is a shape, so this is decided when tracing."""
  vmapped = jax.vmap(fn)

  def mapped(*args):
    if jax.tree_util.tree_leaves(args)[0].shape[0] != 1:
      return vmapped(*args)
    out = fn(*jax.tree_util.tree_map(lambda x: x[0], args))
    return jax.tree_util.tree_map(lambda x: jnp.expand_dims(x, 0), out)
  return mapped


def group_shardings(exp: Experiment):
  """(state, batch) layouts of a group: each one-run layout behind the run axis."""
  return (jax.tree_util.tree_map(parallel.stacked, experiment.state_shardings(exp)),
          parallel.stacked(parallel.batch_sharding(exp.mesh)))


def make_group_step(exp: Experiment):
  """The train step of a group of N runs, vmapped over a leading run axis:

    step(state_N, alive_N, batch_N, hp_N, dropout_key_N, training_N)
        -> (state_N, alive_N, metrics_N)

  (`over_runs`: a group of one computes what the step of a run alone does.)

  Run n's state advances only while it is `training` (the loop's mask: the
  group has reached the step it resumes from, and it has not stopped) and
  `alive` (no non-finite loss yet); otherwise it is kept as it was (frozen).
  Jitted, donating state and alive.
  """
  step = over_runs(_step_fn(exp))

  def group_step(state, alive, batch, hp, dropout_key, training):
    new, metrics = step(state, batch, hp, dropout_key)
    alive = alive & ~(training & ~jnp.isfinite(metrics["loss"]))
    keep = training & alive
    state = jax.tree_util.tree_map(
        lambda n, o: jnp.where(keep.reshape(keep.shape + (1,) * (n.ndim - 1)),
                               n, o), new, state)
    return state, alive, metrics
  state, batch = group_shardings(exp)
  rep = parallel.replicated(exp.mesh)
  return jax.jit(group_step, donate_argnums=(0, 1),
                 in_shardings=(state, rep, batch, rep, rep, rep),
                 out_shardings=(state, rep, rep))


def group_step_args(exp: Experiment, seeds: list[int]) -> tuple:
  """Shapes and dtypes of the arguments of `make_group_step(exp)` for runs with
  seeds `seeds`: what compiling it ahead of time needs."""
  n = len(seeds)
  stack = lambda x: jax.ShapeDtypeStruct((n,) + x.shape, x.dtype)
  state = jax.tree_util.tree_map(stack, exp.state_shapes)
  batch = jax.eval_shape(lambda: exp.task.batch(exp.key(experiment.TRAIN, 0),
                                                exp.train.batch_size))
  flags = jax.ShapeDtypeStruct((n,), jnp.bool_)
  hp = {k: jax.ShapeDtypeStruct((n,), jnp.float32) for k in experiment.HYPER_KEYS}
  keys = jax.eval_shape(lambda: stream_keys(seeds, experiment.DROPOUT))
  return (state, flags, jax.tree_util.tree_map(stack, batch), hp, keys, flags)


def make_eval_step(exp: Experiment, task=None):
  """`eval_step(params_N, batch_N) -> metrics_N` of `task` (default: the
  experiment's), mapped over the leading run axis (`over_runs`), jitted.

  When the task defines `generation_metrics(tokens_BxT, batch)` (seq2seq), the
  model also decodes greedily, `model.generate(inputs, max_length=T)`, and those
  metrics join the teacher-forced ones.
  """
  task, dtype = task or exp.task, precision.DTYPES[exp.train.compute_dtype]

  def eval_step(params, batch):
    variables = {"params": precision.cast_params(params, dtype)}
    inputs = experiment.model_inputs(precision.cast_inputs(batch, dtype))
    at, target = scoring(batch)
    metrics = task.metrics(exp.model.apply(variables, *inputs, **at), target)
    if hasattr(task, "generation_metrics"):
      tokens_BxT = exp.model.apply(variables, inputs[0], method="generate",
                                   max_length=batch["targets"].shape[1])
      metrics.update(task.generation_metrics(tokens_BxT, batch))
    return metrics
  return jax.jit(over_runs(eval_step), out_shardings=parallel.replicated(exp.mesh))


def stream_keys(seeds, *path: int) -> jax.Array:
  """The keys `Experiment.key(*path)` of runs with seeds `seeds` [N]: [N] keys."""
  return jax.vmap(lambda seed: experiment.stream_key(seed, *path))(
      jax.device_put(onp.asarray(seeds, onp.int32)))


def _sampler(exp: Experiment, stream: int, task):
  """(`one(root_key, i, data) -> batch i`, data): a dataset task (one with
  `data(split)` and `sample(data, key, batch_size)`) samples the split of the
  stream (train, eval or test), its arrays an argument of the jitted function,
  not constants compiled into it; data is None for a generated task."""
  size = exp.train.batch_size
  if not hasattr(task, "sample"):
    return lambda root, i, data: task.batch(jax.random.fold_in(root, i), size), None
  return (lambda root, i, data: task.sample(data, jax.random.fold_in(root, i), size),
          _data(exp, task, stream))


def _data(exp: Experiment, task, stream: int):
  """A dataset task's arrays of the split of `stream`, on every device."""
  return jax.device_put(task.data(experiment.DATA_SPLITS[stream]),
                        parallel.replicated(exp.mesh))


def make_batch_fn(exp: Experiment, stream: int, task=None):
  """`batch(i)`, batch i of stream `stream` of the run, generated on the devices,
  each generating only its own slice of the (global) batch."""
  one, data = _sampler(exp, stream, task or exp.task)
  fn = jax.jit(one, out_shardings=parallel.batch_sharding(exp.mesh))
  root = exp.key(stream)
  return lambda i: fn(root, i, data)


def make_group_batch_fn(exp: Experiment, seeds: list[int], stream: int, task=None):
  """`batch(i)` [N, B, ...]: batch i of stream `stream` of each run (its seed's),
  stacked, laid out as `group_shardings`."""
  one, data = _sampler(exp, stream, task or exp.task)
  fn = jax.jit(jax.vmap(one, in_axes=(0, None, None)),
               out_shardings=group_shardings(exp)[1])
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
  return ([Split(stream, experiment.SPLITS[stream], "", exp.task)] +
          [Split(f"{stream}_{name}", experiment.SPLITS[stream], name, task)
           for name, task in sets.items()])


def find_split(exp: Experiment, name: str) -> Split:
  """The split logged as `name` (one of `eval_splits` of "eval" or "test")."""
  splits = {s.name: s for s in eval_splits(exp, "eval") + eval_splits(exp, "test")}
  if name not in splits:
    raise ValueError(f"Unknown split {name!r}; valid: {', '.join(splits)}.")
  return splits[name]


def evaluate_runs(eval_step, params_N, batches) -> tuple[list[dict], int]:
  """([mean metrics of each run], examples) of `eval_step` over `batches`,
  pairs (batch [N, B, ...], real examples in it): the plain mean of equal
  batches, else weighted by the real examples."""
  totals, weights = [], []
  for batch, real in batches:
    totals.append(eval_step(params_N, batch))
    weights.append(real)
  totals = jax.device_get(totals)
  if len(set(weights)) == 1:  # equal batches: the plain mean
    means = {k: sum(t[k] for t in totals) / len(totals) for k in totals[0]}
  else:
    means = {k: sum(t[k] * w for t, w in zip(totals, weights)) / sum(weights)
             for k in totals[0]}
  runs = len(next(iter(means.values())))
  return ([{k: float(v[n]) for k, v in means.items()} for n in range(runs)],
          sum(weights))


def split_batches(exp: Experiment, split: Split, seeds: list[int], exact: bool,
                  num_batches: int | None = None, batch_fn=None):
  """(batch [N, B, ...], real examples) pairs of `split` for runs `seeds`.

  `exact` (a dataset task with `examples`): one pass over its split in order,
  every example once (the first `num_batches` batches if given), the same
  batches for every run; the last batch is filled up with copies of an example
  whose weight in `mask` is 0, and `evaluate_runs` weighs each batch by its
  real examples, so the means are exact for a classifier's per-example metrics.
  Otherwise `num_batches` (default `train.eval_batches`) fixed batches of each
  run's stream (`batch_fn`, or one made here).
  """
  size = exp.train.batch_size
  if not exact:
    batch_fn = batch_fn or make_group_batch_fn(exp, seeds, split.stream, split.task)
    return ((batch_fn(i), size) for i in range(num_batches or exp.train.eval_batches))
  data, task = _data(exp, split.task, split.stream), split.task
  n = int(data["labels"].shape[0])

  def fetch(start, data):
    index_B = start + jnp.arange(size)
    batch = task.examples(data, jnp.minimum(index_B, n - 1))
    batch = dict(batch, mask=batch["mask"] * (index_B < n)[:, None])
    return jax.tree_util.tree_map(
        lambda x: jnp.broadcast_to(x, (len(seeds),) + x.shape), batch)

  fetch = jax.jit(fetch, out_shardings=group_shardings(exp)[1])
  return ((fetch(start, data), min(size, n - start))
          for start in range(0, n, size)[:num_batches])


def evaluate_split(exp: Experiment, params, split: Split | str = "eval",
                   num_batches: int | None = None) -> tuple[dict[str, float], int]:
  """(mean metrics, number of examples evaluated) of one run's `params` on a
  held-out split (a `Split`, or its name): `split_batches`, exact for a dataset
  task with `examples`."""
  if isinstance(split, str):
    split = find_split(exp, split)
  params_N = jax.tree_util.tree_map(lambda x: jnp.expand_dims(x, 0), params)
  batches = split_batches(exp, split, [exp.train.seed],
                          hasattr(split.task, "examples"), num_batches)
  per_run, examples = evaluate_runs(make_eval_step(exp, split.task), params_N,
                                    batches)
  return per_run[0], examples


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
        f"{exp.config.model.name} with {num_params(exp.state_shapes.params):,} "
        f"parameters{f', {runs} runs in a group' if runs > 1 else ''}. Reduce "
        "the batch, the length or the model.")


def num_params(params) -> int:
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
