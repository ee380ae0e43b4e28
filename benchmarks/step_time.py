"""Times one full training step of a model on random tokens.

  python benchmarks/step_time.py --model=lstm --batch=32 --length=256 --width=256 \
      --layers=1 --vocab=16 [--steps=20] [--model_args=key=value,...]

The step is seqjax's own `train_step`: embedding, model, output layer,
cross-entropy, backward pass, clipping and the AdamW update. Prints one JSON line:
step_time_ms (median over --steps after warm-up), tokens_per_s, compile_s,
peak_rss_mb (the process), temp_mb (XLA's compiled temporary buffers of the step,
a per-step memory figure independent of the process), num_params, device, and
the settings.
"""

import dataclasses
import resource
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

try:
  from benchmarks import machine
except ImportError:  # run as a file: python benchmarks/step_time.py
  import machine  # pylint: disable=g-import-not-at-top
from seqjax import configs
from seqjax import experiment
from seqjax import models
from seqjax import parallel
from seqjax import stepping
from seqjax.experiment import make_optimizer
from seqjax.tasks import base

_MODEL = flags.DEFINE_string("model", "lstm", "Model name.")
_BATCH = flags.DEFINE_integer("batch", 32, "Batch size.")
_LENGTH = flags.DEFINE_integer("length", 256, "Sequence length.")
_WIDTH = flags.DEFINE_integer("width", 256, "Model width (embedding and hidden).")
_LAYERS = flags.DEFINE_integer("layers", 1, "Number of layers.")
_VOCAB = flags.DEFINE_integer("vocab", 16, "Vocabulary size.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps after warm-up.")
_MODEL_ARGS = flags.DEFINE_string(
    "model_args", "", "Extra config.model overrides, key=value,...")


@dataclasses.dataclass(frozen=True)
class RandomTokens:
  """Next-token prediction on uniform random tokens: a task of pure cost."""
  length: int
  vocab: int
  loss = "xent"
  metric = "loss"
  mode = "min"
  chance = 0.0
  solved = 0.0

  @property
  def io(self):
    return base.IOSpec(kind="lm", length=self.length, output_size=self.vocab,
                       input_vocab=self.vocab)

  def batch(self, key, batch_size):
    tokens = jax.random.randint(key, (batch_size, self.length + 1), 0, self.vocab)
    return dict(inputs=tokens[:, :-1], targets=tokens[:, 1:],
                mask=jnp.ones((batch_size, self.length), jnp.float32))

  def metrics(self, logits, batch):
    return dict(loss=base.cross_entropy(logits, batch["targets"], batch["mask"]))


def model_section(name: str, width: int, layers: int, extra: str):
  fields = {f.name for f in dataclasses.fields(models.MODELS[name])}
  overrides = {k: v for k, v in (("width", width), ("num_layers", layers))
               if k in fields}
  section = models.model_config(name, **overrides)
  defaults = {k: section[k] for k in section}
  for key, value in configs.parse_arg(extra, **defaults).items():
    section[key] = value
  return section


def make_experiment(model_cfg, length: int, vocab: int, batch: int,
               **train_fields) -> experiment.Experiment:
  """`model_cfg` on `RandomTokens`; `train_fields` replace the train defaults
  (`compute_dtype="bfloat16"`)."""
  task = RandomTokens(length, vocab)
  train_cfg = configs.train_config(configs.train_defaults())
  train_cfg = dataclasses.replace(train_cfg, batch_size=batch, **train_fields)
  tx, schedule = make_optimizer(train_cfg)
  mesh_cfg = parallel.MeshConfig()
  return experiment.Experiment(None, task, models.build(model_cfg, task.io), train_cfg,
                          tx, schedule, mesh_cfg, parallel.make_mesh(mesh_cfg, batch))


def time_steps(exp: experiment.Experiment, steps: int) -> dict:
  """Compiles and times `steps` training steps; returns the measurements."""
  state = experiment.init_state(exp)
  train_step = stepping.make_train_step(exp)
  batch_fn = stepping.make_batch_fn(exp, experiment.TRAIN)
  batches = [batch_fn(i) for i in range(steps + 2)]
  jax.block_until_ready(batches)
  t0 = time.perf_counter()
  compiled = train_step.lower(state, batches[0]).compile()
  compile_s = time.perf_counter() - t0
  memory = compiled.memory_analysis()
  state, _ = compiled(state, batches[0])  # warm-up
  jax.block_until_ready(state)
  times = []
  for batch in batches[1:steps + 1]:
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
  step_s = statistics.median(times)
  return dict(
      step_time_ms=1e3 * step_s,
      tokens_per_s=exp.train.batch_size * exp.task.length / step_s,
      compile_s=compile_s,
      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      temp_mb=getattr(memory, "temp_size_in_bytes", float("nan")) / 2**20,
      num_params=stepping.num_params(state.params),
      device=jax.devices()[0].device_kind,
  )


def jax_step(exp: experiment.Experiment):
  """seqjax's compiled train step of `exp` as a callable that blocks."""
  state = experiment.init_state(exp)
  batch = stepping.make_batch_fn(exp, experiment.TRAIN)(0)
  t0 = time.perf_counter()
  compiled = stepping.make_train_step(exp).lower(state, batch).compile()
  info = dict(compile_s=time.perf_counter() - t0,
              num_params=stepping.num_params(state.params),
              step_temp_mb=stepping.compiled_temp_mb(compiled))
  box = [state]

  def step():
    box[0], metrics = compiled(box[0], batch)
    jax.block_until_ready((box[0], metrics))

  step()
  step.info = info
  return step


def interleaved(steps_by_name: dict, steps: int) -> dict:
  """Times the steps one each in turn, so a change in the load of a shared
  machine hits all of them alike; median and min per step, in ms."""
  times = {name: [] for name in steps_by_name}
  for _ in range(steps):
    for name, step in steps_by_name.items():
      t0 = time.perf_counter()
      step()
      times[name].append(time.perf_counter() - t0)
  return {name: dict(step_time_ms=1e3 * statistics.median(t),
                     min_step_time_ms=1e3 * min(t), **steps_by_name[name].info)
          for name, t in times.items()}


def torch_train_step(model, loss_fn):
  """A PyTorch training step, AdamW after global-norm clipping as in seqjax's
  step, as a callable with an `info` dict; `loss_fn()` returns the loss."""
  import torch  # pylint: disable=import-outside-toplevel
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

  def step():
    opt.zero_grad()
    loss_fn().backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()

  step()
  step.info = dict(torch_version=torch.__version__, threads=torch.get_num_threads(),
                   num_params=sum(p.numel() for p in model.parameters()))
  return step


def torch_lm_step(make_backbone, forward, batch: int, length: int, width: int,
                  vocab: int):
  """`torch_train_step` of a PyTorch language model on random tokens [B, L + 1]:
  embedding, `forward(backbone, x [B, L, width])` of `make_backbone()` (built
  between the embedding and the output layer), output layer, next-token
  cross-entropy."""
  import torch  # pylint: disable=import-outside-toplevel
  model = torch.nn.ModuleDict(dict(
      embed=torch.nn.Embedding(vocab, width),
      backbone=make_backbone(),
      head=torch.nn.Linear(width, vocab)))
  tokens = torch.randint(0, vocab, (batch, length + 1))

  def loss():
    h = forward(model["backbone"], model["embed"](tokens[:, :-1]))
    return torch.nn.functional.cross_entropy(
        model["head"](h).reshape(-1, vocab), tokens[:, 1:].reshape(-1))

  return torch_train_step(model, loss)


def compare(step_fns: dict, torch_step, num_steps: int, **result) -> dict:
  """Times `step_fns` (name -> callable, "seqjax" among them) interleaved, plus
  `torch_step()` when it is given (None: skipped) and returns a step (None:
  torch not installed). Returns `result` with each one's times and its median
  over seqjax's as `<name>_over_seqjax` (> 1: seqjax is faster)."""
  if torch_step is not None:
    step = torch_step()
    if step is None:
      result["torch"] = "torch not installed: skipped"
    else:
      step_fns["torch"] = step
  result.update(interleaved(step_fns, num_steps))
  for name in step_fns:
    if name != "seqjax":
      result[f"{name}_over_seqjax"] = (result[name]["step_time_ms"]
                                       / result["seqjax"]["step_time_ms"])
  return result


def main(argv):
  del argv
  machine.setup()
  model_cfg = model_section(_MODEL.value, _WIDTH.value, _LAYERS.value,
                            _MODEL_ARGS.value)
  exp = make_experiment(model_cfg, _LENGTH.value, _VOCAB.value, _BATCH.value)
  result = time_steps(exp, _STEPS.value)
  result.update(model=_MODEL.value, batch=_BATCH.value, length=_LENGTH.value,
                width=_WIDTH.value, layers=_LAYERS.value, vocab=_VOCAB.value,
                model_args=_MODEL_ARGS.value)
  machine.emit(result)


if __name__ == "__main__":
  app.run(main)
