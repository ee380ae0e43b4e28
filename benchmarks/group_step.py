"""The train step of a trial group against N solo steps, per model.

  python -m benchmarks.group_step [--models=rnn,lstm,gru,lru,transformer] \
      [--group=4] [--batch=32] [--length=256] [--width=256] [--layers=1] \
      [--vocab=16] [--steps=20] [--model_args=key=value,...]

A trial group (`stepping.make_group_step`, the step every run trains with) vmaps the one-run step over a leading
run axis of N runs; on one device it pays only if one group step costs less
than N solo steps (`stepping.make_train_step`). Both steps are seqjax's own, on
random tokens (benchmarks/step_time.py's task), compiled first and then timed
one each in turn (interleaved: a change in the load of a shared machine hits
both alike). Prints one JSON line per model: the median and minimum step times
(ms) and group_over_n_solo = group / (N * solo) of the medians (< 1: grouping
is cheaper per trial-step), with the load average beside them.
"""

import os
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from benchmarks import machine
from benchmarks import step_time
from seqjax import experiment
from seqjax import stepping

_MODELS = flags.DEFINE_list("models", ["rnn", "lstm", "gru", "lru", "transformer"],
                            "Model names.")
F = flags.FLAGS  # step_time's: --batch --length --width --layers --vocab --steps --model_args
_GROUP = flags.DEFINE_integer("group", 4, "Runs in the group (N).")


def group_args(exp: experiment.Experiment, n: int) -> tuple:
  """The arguments of `stepping.make_group_step(exp)` for `n` runs of `exp`
  (seeds 0..n-1: different initial parameters and batches, equal
  hyperparameters): (state, alive, batch, hp, dropout keys, started). Under
  `jax.eval_shape`, their shapes without allocating them."""
  seeds = list(range(n))
  # Each run initialised alone and stacked, as train.py's groups are: a vmapped
  # init runs the orthogonal initialiser's QR as one batched LAPACK call, which
  # was seen to hang on XLA:CPU (all threads waiting, in jax::ParallelBatchMap).
  init = jax.jit(experiment.init_fn(exp))
  state = jax.tree_util.tree_map(
      lambda *xs: jnp.stack(xs),
      *[init(key) for key in stepping.stream_keys(seeds, experiment.INIT)])
  batch = stepping.make_group_batch_fn(exp, seeds, experiment.TRAIN)(0)
  hp = {k: jnp.full((n,), v, jnp.float32)
        for k, v in experiment.hyperparameters(exp.train).items()}
  keys = stepping.stream_keys(seeds, experiment.DROPOUT)
  return state, jnp.ones(n, bool), batch, hp, keys, jnp.ones(n, bool)


def group_step(exp: experiment.Experiment, n: int):
  """seqjax's compiled group step of `n` runs of `exp` (`group_args`) as a
  callable that blocks."""
  state, alive, batch, hp, keys, started = group_args(exp, n)
  t0 = time.perf_counter()
  compiled = stepping.make_group_step(exp).lower(
      state, alive, batch, hp, keys, started).compile()
  info = dict(compile_s=time.perf_counter() - t0)
  box = [state, alive]

  def step():
    box[0], box[1], metrics = compiled(box[0], box[1], batch, hp, keys, started)
    jax.block_until_ready((box[0], metrics))

  step()
  step.info = info
  return step


def measure(name: str, n: int, batch: int, length: int, width: int, layers: int,
            vocab: int, steps: int, model_args: str = "") -> dict:
  """The interleaved solo and group step times of model `name`."""
  model_cfg = step_time.model_section(name, width, layers, model_args)
  exp = step_time.make_experiment(model_cfg, length, vocab, batch)
  load = os.getloadavg()[0]
  times = step_time.interleaved(
      {"solo": step_time.jax_step(exp), "group": group_step(exp, n)}, steps)
  solo, group = times["solo"]["step_time_ms"], times["group"]["step_time_ms"]
  return dict(model=name, group=n, batch=batch, length=length, width=width,
              layers=layers, model_args=model_args,
              solo_ms=round(solo, 3), group_ms=round(group, 3),
              min_solo_ms=round(times["solo"]["min_step_time_ms"], 3),
              min_group_ms=round(times["group"]["min_step_time_ms"], 3),
              group_over_n_solo=round(group / (n * solo), 3),
              min_group_over_n_solo=round(times["group"]["min_step_time_ms"] / (
                  n * times["solo"]["min_step_time_ms"]), 3),
              load=[round(load, 2), round(os.getloadavg()[0], 2)],
              device=jax.devices()[0].device_kind)


def main(argv):
  del argv
  machine.setup()
  for name in _MODELS.value:
    machine.emit(measure(name, _GROUP.value, F.batch, F.length, F.width,
                         F.layers, F.vocab, F.steps, F.model_args))


if __name__ == "__main__":
  app.run(main)
