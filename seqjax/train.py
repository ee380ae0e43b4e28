"""Training and evaluation: one pure `train_step`, jitted once, shared by every
model and task, so comparisons between architectures are fair by construction.

A run is a function of its config: data batches are `task.batch` of keys folded
from (seed, stream, step), dropout keys from (seed, step). Streams: 0 training,
1 validation (the eval during training, model selection), 2 test (reported only).
"""

import dataclasses
import math
import os
import resource
import time
from typing import Any

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from seqjax import checkpoints
from seqjax import configs
from seqjax import metric_log
from seqjax import models
from seqjax import parallel
from seqjax import precision
from seqjax import tasks
from seqjax import workdir as workdir_lib
from seqjax.errors import ConfigError
from seqjax.tasks import base

TRAIN, VALID, TEST, INIT, DROPOUT = range(5)
SPLITS = {"eval": VALID, "test": TEST}
DATA_SPLITS = {TRAIN: "train", VALID: "eval", TEST: "test"}  # dataset tasks' `data`


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything built from a config, checked before anything is compiled."""
  config: ml_collections.ConfigDict
  task: Any
  model: nn.Module
  train: configs.TrainConfig
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  mesh_cfg: parallel.MeshConfig
  mesh: jax.sharding.Mesh

  def key(self, *path: int) -> jax.Array:
    key = jax.random.key(self.train.seed)
    for p in path:
      key = jax.random.fold_in(key, p)
    return key


def build(config: ml_collections.ConfigDict) -> Experiment:
  """Validates `config` and builds task, model and optimizer (raises ConfigError)."""
  for name in ("task", "model", "train"):
    if name not in config:
      raise ConfigError(f"The config has no `{name}` section; it needs task, "
                        "model and train.")
  task = tasks.build(config.task)
  model = models.build(config.model, task.io)
  train_cfg = configs.train_config(config.train)
  if train_cfg.warmup_steps >= train_cfg.steps and train_cfg.warmup_steps > 0:
    raise ConfigError(f"train.warmup_steps={train_cfg.warmup_steps} must be "
                      f"smaller than train.steps={train_cfg.steps}.")
  tx, schedule = make_optimizer(train_cfg)
  mesh_cfg = parallel.mesh_config(config.get("mesh"))
  mesh = parallel.make_mesh(mesh_cfg, train_cfg.batch_size)
  return Experiment(config, task, model, train_cfg, tx, schedule, mesh_cfg, mesh)


def make_optimizer(tc: configs.TrainConfig):
  """AdamW after global-norm clipping, linear warmup then cosine or constant."""
  if tc.schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, tc.learning_rate, tc.warmup_steps, tc.steps)
  else:
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, tc.learning_rate, tc.warmup_steps),
         optax.constant_schedule(tc.learning_rate)], [tc.warmup_steps])
  tx = optax.adamw(schedule, weight_decay=tc.weight_decay)
  if tc.grad_clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(tc.grad_clip), tx)
  return tx, schedule


def model_inputs(batch: dict) -> tuple:
  """Positional model arguments: (inputs,) or (inputs, decoder_inputs)."""
  if "decoder_inputs" in batch:
    return batch["inputs"], batch["decoder_inputs"]
  return (batch["inputs"],)


def _init_state(exp: Experiment) -> TrainState:
  # Zeros of the batch's shapes: initialisation needs shapes only, and a dataset
  # task's arrays then stay out of this jitted function.
  batch = jax.tree_util.tree_map(
      lambda s: jnp.zeros(s.shape, s.dtype),
      jax.eval_shape(lambda: exp.task.batch(exp.key(TRAIN, 0), 1)))
  params = exp.model.init(exp.key(INIT), *model_inputs(batch))["params"]
  return TrainState(jnp.zeros((), jnp.int32), params, exp.tx.init(params))


def state_shardings(exp: Experiment):
  return parallel.state_shardings(exp.mesh, exp.mesh_cfg,
                                  jax.eval_shape(lambda: _init_state(exp)))


def abstract_state(exp: Experiment):
  """Shapes, dtypes and shardings of the train state, for restoring into."""
  return jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      jax.eval_shape(lambda: _init_state(exp)), state_shardings(exp))


def init_state(exp: Experiment) -> TrainState:
  """The initial state, laid out on the mesh (`config.mesh`)."""
  return jax.jit(lambda: _init_state(exp), out_shardings=state_shardings(exp))()


def make_train_step(exp: Experiment):
  """Returns `train_step(state, batch) -> (state, metrics)`, jitted, donating state."""
  dropout_key = exp.key(DROPOUT)
  dtype = precision.DTYPES[exp.train.compute_dtype]

  def train_step(state: TrainState, batch: dict):
    rngs = {"dropout": jax.random.fold_in(dropout_key, state.step)}

    def loss_fn(params):
      outputs = exp.model.apply(
          {"params": precision.cast_params(params, dtype)},
          *model_inputs(precision.cast_inputs(batch, dtype)), train=True, rngs=rngs)
      return base.loss_fn(exp.task.loss, outputs, batch), outputs

    (loss, outputs), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = exp.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = exp.task.metrics(outputs, batch)
    metrics.update(loss=loss, grad_norm=optax.tree.norm(grads),
                   param_norm=optax.tree.norm(params),
                   update_norm=optax.tree.norm(updates),
                   learning_rate=exp.schedule(state.step))
    return TrainState(state.step + 1, params, opt_state), metrics

  shardings = state_shardings(exp)
  return jax.jit(train_step, donate_argnums=0,
                 in_shardings=(shardings, parallel.batch_sharding(exp.mesh)),
                 out_shardings=(shardings, parallel.replicated(exp.mesh)))


def make_eval_step(exp: Experiment, task=None):
  """`eval_step(params, batch) -> metrics` of `task` (default: the experiment's).

  When the task defines `generation_metrics(tokens_BxT, batch)` (seq2seq), the
  model also decodes greedily, `model.generate(inputs, max_length=T)`, and those
  metrics join the teacher-forced ones.
  """
  task = task or exp.task
  dtype = precision.DTYPES[exp.train.compute_dtype]

  def eval_step(params, batch):
    variables = {"params": precision.cast_params(params, dtype)}
    inputs = model_inputs(precision.cast_inputs(batch, dtype))
    metrics = task.metrics(exp.model.apply(variables, *inputs), batch)
    if hasattr(task, "generation_metrics"):
      tokens_BxT = exp.model.apply(variables, inputs[0], method="generate",
                                   max_length=batch["targets"].shape[1])
      metrics.update(task.generation_metrics(tokens_BxT, batch))
    return metrics
  return jax.jit(eval_step, in_shardings=(state_shardings(exp).params,
                                          parallel.batch_sharding(exp.mesh)),
                 out_shardings=parallel.replicated(exp.mesh))


def make_batch_fn(exp: Experiment, stream: int, task=None):
  """`batch(i)` for stream `stream`, generated on the devices, each generating
  only its own slice of the (global) batch.

  A dataset task (one with `data(split)` and `sample(data, key, batch_size)`)
  samples the split of the stream (train, eval or test); its arrays are an
  argument of the jitted function, not constants compiled into it.
  """
  task = task or exp.task
  root = exp.key(stream)
  size = exp.train.batch_size
  out = parallel.batch_sharding(exp.mesh)
  if not hasattr(task, "sample"):
    return jax.jit(lambda i: task.batch(jax.random.fold_in(root, i), size),
                   out_shardings=out)
  data = jax.device_put(task.data(DATA_SPLITS[stream]),
                        parallel.replicated(exp.mesh))
  sample = jax.jit(lambda i, data: task.sample(data, jax.random.fold_in(root, i),
                                               size), out_shardings=out)
  return lambda i: sample(i, data)


def eval_splits(exp: Experiment, stream: str) -> list[str]:
  """Evaluation splits of `stream` ("eval" or "test"): the stream itself, then
  `<stream>_<name>` for each extra evaluation set of the task (`eval_sets`)."""
  return [stream] + [f"{stream}_{name}" for name in getattr(exp.task, "eval_sets", {})]


def split_task(exp: Experiment, split: str):
  """The task that split `split` (see `eval_splits`) evaluates."""
  _, _, name = split.partition("_")
  return exp.task.eval_sets[name] if name else exp.task


def evaluate(exp: Experiment, params, split: str = "eval", eval_step=None,
             batch_fn=None) -> dict[str, float]:
  """Mean metrics over `train.eval_batches` fixed batches of a held-out split."""
  task = split_task(exp, split)
  eval_step = eval_step or make_eval_step(exp, task)
  batch_fn = batch_fn or make_batch_fn(exp, SPLITS[split.partition("_")[0]], task)
  totals = [eval_step(params, batch_fn(i)) for i in range(exp.train.eval_batches)]
  totals = jax.device_get(totals)
  return {k: float(sum(t[k] for t in totals) / len(totals)) for k in totals[0]}


def peak_memory_mb() -> float:
  """Peak memory of the run: the device's peak bytes in use where the backend
  reports it (GPU, TPU), else the process's peak resident set size (CPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compiled_temp_mb(compiled) -> float | None:
  """XLA's temporary buffers of a compiled step (activations, workspace) in MB,
  a per-step memory cost independent of the process; None where the backend
  gives no memory analysis."""
  temp = getattr(compiled.memory_analysis(), "temp_size_in_bytes", None)
  return None if temp is None else temp / 2**20


def num_params(params) -> int:
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


class Diverged(Exception):
  pass


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       progress: bool = True) -> dict:
  """Trains, evaluates and checkpoints; resumes if `workdir` has a checkpoint.

  Returns the summary also written to DIR/summary.json.
  """
  exp = build(config)
  workdir_lib.check(workdir, config)
  writer = parallel.is_writer()
  if writer:
    workdir_lib.init(workdir, config)
  tc, task = exp.train, exp.task
  start_time = time.time()

  mngr = checkpoints.manager(workdir, tc.keep_checkpoints, task.metric, task.mode)
  state, start = checkpoints.restore_latest(mngr, abstract_state(exp))
  if state is None:
    state = init_state(exp)
  else:
    logging.info("Resuming from step %d in %s", start, workdir)
  log = metric_log.MetricLog(workdir, start, tc.steps, progress and writer,
                             write=writer)
  summary = dict(status="running", step=start, metric=task.metric,
                 mode=task.mode, chance=task.chance,
                 num_params=num_params(state.params))
  try:
    summary.update(_train_loop(exp, state, start, mngr, log))
  except Exception as e:
    summary.update(status="failed", error=f"{type(e).__name__}: {e}")
    raise
  finally:
    mngr.wait_until_finished()
    mngr.close()
    log.close()
    summary["wall_time_s"] = time.time() - start_time
    summary["peak_memory_mb"] = peak_memory_mb()
    summary.update(_best(log.records, task))
    if writer:
      workdir_lib.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _train_loop(exp: Experiment, state: TrainState, start: int, mngr, log) -> dict:
  tc, task = exp.train, exp.task
  train_step = make_train_step(exp)
  train_batch = make_batch_fn(exp, TRAIN)
  valid = {split: (make_eval_step(exp, split_task(exp, split)),
                   make_batch_fn(exp, VALID, split_task(exp, split)))
           for split in eval_splits(exp, "eval")}
  pending = None   # (step, metrics) of the last step, fetched after the next one
  tick, tick_step = time.time(), start
  out = {}
  if start < tc.steps:  # compiled ahead of time for its memory analysis; it trains
    train_step = train_step.lower(state, train_batch(start)).compile()
    out["step_temp_mb"] = compiled_temp_mb(train_step)

  def fetch(step, metrics):
    nonlocal tick, tick_step
    metrics = jax.device_get(metrics)
    if not math.isfinite(metrics["loss"]):
      raise Diverged(step)
    if step % tc.log_every == 0 or step == tc.steps:
      now = time.time()
      metrics["steps_per_s"] = (step - tick_step) / max(now - tick, 1e-9)
      tick, tick_step = now, step
      log.write(step, "train", metrics)
    shown = {task.metric: metrics[task.metric]} if task.metric in metrics else {}
    log.progress(step, loss=metrics["loss"], **shown)

  steps_start, t0 = start, time.time()
  try:
    for i in range(start, tc.steps):
      state, metrics = train_step(state, train_batch(i))
      if pending is not None:
        fetch(*pending)
      pending, step = (i + 1, metrics), i + 1
      evaluate_now = step % tc.eval_every == 0 or step == tc.steps
      if evaluate_now or step % tc.checkpoint_every == 0:
        fetch(*pending)
        pending = None
        eval_metrics = None
        if evaluate_now:
          results = {split: evaluate(exp, state.params, split, *fns)
                     for split, fns in valid.items()}
          for split, result in results.items():
            log.write(step, split, result)
          eval_metrics = out["final"] = results["eval"]
        checkpoints.save(mngr, step, state, eval_metrics)
    if pending is not None:
      fetch(*pending)
  except Diverged as e:
    logging.warning("Loss is not finite at step %d: the run diverged.", e.args[0])
    return dict(status="diverged", step=e.args[0], diverged_at=e.args[0], **out)
  out["steps_per_s"] = (tc.steps - steps_start) / max(time.time() - t0, 1e-9)
  for split in eval_splits(exp, "test"):  # "test", then the extra sets
    eval_step = valid["eval" + split[len("test"):]][0]  # same task, compiled
    out[split] = evaluate(exp, state.params, split, eval_step)
    log.write(tc.steps, split, out[split])
  return dict(status="completed", step=tc.steps, **out)


def _best(records: list[dict], task) -> dict:
  """`final` and `best` eval metrics, from the log (which survives resumes)."""
  evals = [r for r in records if r["split"] == "eval"]
  if not evals:
    return {}
  pick = max if task.mode == "max" else min
  strip = lambda r: {k: v for k, v in r.items() if k not in ("split",)}
  # Ties go to the latest step, as in the checkpoint manager's BestN policy.
  best = pick(reversed(evals), key=lambda r: r[task.metric])
  return dict(final=strip(evals[-1]), best=strip(best))


def evaluate_checkpoint(workdir: str, step: int | None = None) -> dict:
  """Restores the best (or `step`) checkpoint of `workdir` and evaluates it on the
  validation and test streams, without training. Writes DIR/eval_<step>.json."""
  restored = checkpoints.load(workdir, step)
  exp = build(restored.config)
  splits = eval_splits(exp, "eval") + eval_splits(exp, "test")
  result = {"step": restored.step,
            **{split: evaluate(exp, restored.params, split) for split in splits}}
  if parallel.is_writer():
    workdir_lib.write_json(
        os.path.join(workdir, f"eval_{restored.step}.json"), result)
  return result
