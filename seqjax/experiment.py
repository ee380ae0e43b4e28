"""Building an experiment from its config: the task, the model, the optimizer,
the random streams and the train state's layout, all checked before anything is
compiled; and restoring a trained run (`load`). `seqjax.train` runs the steps and
the loop on what is built here.

A run is a function of its config: data batches are `task.batch` of keys folded
from (seed, stream, step), dropout keys from (seed, step). Streams: 0 training,
1 validation (the eval during training, model selection), 2 test (reported only).
"""

import dataclasses
import functools
import os
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from seqjax import checkpoints
from seqjax import configs
from seqjax import models
from seqjax import parallel
from seqjax import run_files
from seqjax import tasks
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


def stream_key(seed, *path: int) -> jax.Array:
  """The key of run `seed`'s stream `path` (say TRAIN, step): folded in turn."""
  return functools.reduce(jax.random.fold_in, path, jax.random.key(seed))


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
    return stream_key(self.train.seed, *path)

  @functools.cached_property
  def state_shapes(self):
    """The train state's shapes and dtypes (`init_fn` traced once, not run):
    the shardings, the restore target and the parameter count read it."""
    return jax.eval_shape(init_fn(self), self.key(INIT))


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
  if (train_cfg.stop_when_solved
      and base.solved_level(task, train_cfg.solved_level) is None):
    raise ConfigError(
        f"train.stop_when_solved=True needs a level: task {config.task.name!r} "
        f"has no solved_level for its metric {task.metric!r}; set "
        "train.solved_level, or train.stop_when_solved=False.")
  tx, schedule = make_optimizer(train_cfg)
  mesh_cfg = parallel.mesh_config(config.get("mesh"))
  mesh = parallel.make_mesh(mesh_cfg, train_cfg.batch_size)
  return Experiment(config, task, model, train_cfg, tx, schedule, mesh_cfg, mesh)


# `config.train` keys that change values but not the compiled program: trials
# that differ only in these train together as one group (`train_trials`).
HYPER_KEYS = ("learning_rate", "weight_decay", "grad_clip", "warmup_steps")
GROUPABLE = ("seed",) + HYPER_KEYS


def hyperparameters(tc: configs.TrainConfig) -> dict[str, float]:
  """The values of `HYPER_KEYS`; arrays of them drive a group's optimizer."""
  return {k: float(getattr(tc, k)) for k in HYPER_KEYS}


def make_schedule(tc: configs.TrainConfig, hp: dict) -> optax.Schedule:
  """Linear warmup from 0 to `hp["learning_rate"]` over `hp["warmup_steps"]`,
  then cosine decay to 0 at `tc.steps`, or constant.

  The arithmetic of optax's `warmup_cosine_decay_schedule` and
  `join_schedules(linear, constant)`, written so that the peak and the warmup
  may be traced arrays (a group's per-trial values).
  """
  peak, warmup = hp["learning_rate"], hp["warmup_steps"]

  def schedule(step):
    count = jnp.clip(step, 0, warmup)
    frac = 1 - count / jnp.maximum(warmup, 1)
    warm = (0.0 - peak) * frac + peak
    if tc.schedule == "constant":
      after = peak
    else:
      decay_steps = tc.steps - warmup
      count = jnp.minimum(step - warmup, decay_steps)
      after = peak * (0.5 * (1 + jnp.cos(jnp.pi * count / decay_steps)))
    return jnp.where(step < warmup, warm, after)
  return schedule


def make_optimizer(tc: configs.TrainConfig, hp: dict | None = None):
  """AdamW after global-norm clipping, linear warmup then cosine or constant.

  `hp` (default: the config's values) may hold traced arrays; whether to clip
  (`tc.grad_clip > 0`) is part of the program, so it is read from `tc`.
  """
  hp = hyperparameters(tc) if hp is None else hp
  schedule = make_schedule(tc, hp)
  tx = optax.adamw(schedule, weight_decay=hp["weight_decay"])
  if tc.grad_clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(hp["grad_clip"]), tx)
  return tx, schedule


def model_inputs(batch: dict) -> tuple:
  """Positional model arguments: (inputs,) or (inputs, decoder_inputs)."""
  if "decoder_inputs" in batch:
    return batch["inputs"], batch["decoder_inputs"]
  return (batch["inputs"],)


def init_fn(exp: Experiment):
  """`init(key) -> TrainState`, the initial state of a run with init key `key`."""
  # Zeros of the batch's shapes: initialisation needs shapes only, and a dataset
  # task's arrays then stay out of this jitted function.
  batch = jax.tree_util.tree_map(
      lambda s: jnp.zeros(s.shape, s.dtype),
      jax.eval_shape(lambda: exp.task.batch(exp.key(TRAIN, 0), 1)))

  def init(key):
    params = exp.model.init(key, *model_inputs(batch))["params"]
    return TrainState(jnp.zeros((), jnp.int32), params, exp.tx.init(params))
  return init


def state_shardings(exp: Experiment):
  return parallel.state_shardings(exp.mesh, exp.mesh_cfg, exp.state_shapes)


def abstract_state(exp: Experiment):
  """Shapes, dtypes and shardings of the train state, for restoring into."""
  return jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      exp.state_shapes, state_shardings(exp))


def init_state(exp: Experiment) -> TrainState:
  """The initial state, laid out on the mesh (`config.mesh`)."""
  return jax.jit(init_fn(exp), out_shardings=state_shardings(exp))(exp.key(INIT))


@dataclasses.dataclass
class Restored:
  """A trained model restored from a workdir, for use in a notebook.

  `model.apply({"params": params}, inputs)` runs it; `task.batch(key, n)` makes data.
  """
  config: Any
  task: Any
  model: Any
  params: Any
  step: int


def load(workdir: str, step: int | None = None) -> Restored:
  """Restores config and parameters from `workdir`: checkpoint `step`, else the
  best by the task's headline eval metric, else the latest."""
  config = run_files.load_config(workdir)
  exp = build(config)
  mngr = checkpoints.manager(workdir, exp.train.keep_checkpoints,
                             exp.task.metric, exp.task.mode, read_only=True)
  steps = mngr.all_steps()
  if not steps:
    raise ConfigError(f"--workdir={workdir!r} holds no checkpoint.")
  if step is None:
    step = checkpoints.best_step(workdir, steps, exp.task) or max(steps)
  elif step not in steps:
    raise ConfigError(f"--step={step} has no checkpoint in {workdir!r}; "
                      f"available: {sorted(steps)}.")
  try:
    state = checkpoints.restore(mngr, step, abstract_state(exp))
  except checkpoints.Unreadable as e:
    others = sorted(set(steps) - {step})
    path = os.path.join(str(mngr.directory), str(step))
    raise ConfigError(
        f"Checkpoint {path} cannot be read: {checkpoints.reason(e, path)}. "
        + (f"Use another ({', '.join(map(str, others))}: --step) or move this one"
           if others else "Move it")
        + " out of checkpoints/ (resumed training sets it aside itself)."
    ) from None
  finally:
    mngr.close()
  return Restored(config, exp.task, exp.model, state.params, int(step))
