"""Times each task's batch generator against a training step at the same size.

  python benchmarks/task_time.py [--quick] [--tasks=adding,flip_flop] [--model=lstm] [--steps=10]
  python -m benchmarks.task_time --tasks=lra:pathfinder,lra:imdb --model=transformer \
      --batch_size=4 --task_args=num_train=2000 --lra_files=/tmp/lra_files --generation=500

For each task, the config is `experiments/<task>.py` (with `quick` when --quick, and
`model=--model`); `lra:<task>` is `experiments/lra.py` with `task=<task>` (LRA's sizes).
--batch_size replaces the config's batch (0 keeps it); --task_args sets config.task keys that
exist for the task (`key=value,...`: sizes of generated sets; sampling a held set costs the same
whatever its size). The LRA file tasks read their folders from --lra_dirs (`imdb_dir=...,
aan_dir=...,cifar10_dir=...`), or from small files in the official formats that --lra_files=DIR
writes (random bytes at LRA lengths). --generation=N also times generating N Pathfinder images
at each resolution (offline, once per data set) and prints images per second. Generator: the jitted `batch(i)` the training loop calls
(`stepping.make_batch_fn`), median over --steps calls after warm-up. Train step:
seqjax's jitted `train_step` on the same experiment, median over --steps steps on
pre-generated batches after warm-up (reverse needs a
seq2seq model; with a model that cannot serve the task the step is "n/a"). Prints one
JSON line per task: batch, length, generator_ms, step_ms, ratio (generator / step).
"""

import importlib.util
import os
import statistics
import time

from absl import app
from absl import flags
import jax
import numpy as onp

from benchmarks import machine
from benchmarks import step_time
from seqjax import experiment
from seqjax import stepping
from seqjax.errors import ConfigError
from seqjax.tasks import pathfinder

_QUICK = flags.DEFINE_bool("quick", False, "Use the quick configs.")
_TASKS = flags.DEFINE_string(
    "tasks", "copy_memory,adding,selective_copy,associative_recall,"
    "induction_heads,flip_flop,listops,reverse,sequential_digits",
    "Comma-separated task names (experiments/<name>.py).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 0, "Batch size; 0 keeps the config's.")
_TASK_ARGS = flags.DEFINE_string("task_args", "", "key=value,... set in config.task.")
_LRA_DIRS = flags.DEFINE_string("lra_dirs", "", "imdb_dir=..,aan_dir=..,cifar10_dir=..")
_LRA_FILES = flags.DEFINE_string(
    "lra_files", "", "Write small official-format LRA files here and read them.")
_GENERATION = flags.DEFINE_integer(
    "generation", 0, "Time generating this many Pathfinder images per resolution.")
# --model (default lstm) and --steps (default 20) are step_time.py's flags.
_MODEL, _STEPS = step_time._MODEL, step_time._STEPS  # pylint: disable=protected-access

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_of(name: str, quick: bool, model: str, extra: str = ""):
  """The config of `experiments/<name>.py`, or of experiments/lra.py for
  `lra:<task>` (then with `extra`, the --lra_dirs arguments)."""
  stem, _, lra_task = name.partition(":")
  spec = importlib.util.spec_from_file_location(
      stem, os.path.join(ROOT, "experiments", f"{stem}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  args = ["quick"] * quick + [f"model={model}"]
  if lra_task:
    args += [f"task={lra_task}"] + [extra] * bool(extra)
  return module.get_config(",".join(args))


def parse_pairs(text: str) -> dict:
  return dict(item.split("=", 1) for item in filter(None, text.split(",")))


def adjust(config, batch_size: int, task_args: dict):
  """--batch_size and the --task_args keys the task has (values typed as the
  config's)."""
  if batch_size:
    config.train.batch_size = batch_size
  for key, value in task_args.items():
    if key in config.task:
      config.task[key] = type(config.task[key])(value)
  return config


def write_lra_files(root: str, seed: int = 0) -> str:
  """Small LRA files in the official formats, random printable bytes at LRA's
  lengths: aclImdb (64 reviews per folder, 5,000 bytes), new_aan_pairs (64
  pairs, 5,000 bytes each text), CIFAR-10 binary batches (256 records each).
  Returns the --lra_dirs string that reads them."""
  rng = onp.random.default_rng(seed)
  text = lambda n: bytes(rng.integers(32, 127, n, dtype=onp.uint8))
  imdb = os.path.join(root, "aclImdb")
  for folder in ("train/neg", "train/pos", "test/neg", "test/pos"):
    os.makedirs(os.path.join(imdb, folder), exist_ok=True)
    for i in range(64):
      with open(os.path.join(imdb, folder, f"{i}_1.txt"), "wb") as f:
        f.write(text(5000))
  aan = os.path.join(root, "tsv_data")
  os.makedirs(aan, exist_ok=True)
  for split in ("train", "eval", "test"):
    with open(os.path.join(aan, f"new_aan_pairs.{split}.tsv"), "wb") as f:
      for i in range(64):
        f.write(b"\t".join([b"%d.0" % (i % 2), b"a", b"b", text(5000),
                            text(5000)]) + b"\n")
  cifar = os.path.join(root, "cifar-10-batches-bin")
  os.makedirs(cifar, exist_ok=True)
  for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    records = rng.integers(0, 256, (256, 3073), dtype=onp.uint8)
    records[:, 0] %= 10
    records.tofile(os.path.join(cifar, name))
  return f"imdb_dir={imdb},aan_dir={aan},cifar10_dir={cifar}"


def time_pathfinder_generation(num: int) -> None:
  """Prints the offline generation rate of Pathfinder at each resolution."""
  for resolution in sorted(pathfinder.PRESETS):
    task = pathfinder.Pathfinder(resolution=resolution)
    t0 = time.perf_counter()
    pathfinder.generate(0, num, resolution, task.contour_length,
                        task.num_distractors, task.distractor_length)
    seconds = time.perf_counter() - t0
    machine.emit(dict(generator="pathfinder", resolution=resolution,
                      images=num, seconds=round(seconds, 2),
                      images_per_s=round(num / seconds, 1)))


def time_generator(exp: experiment.Experiment, steps: int) -> float:
  """Median milliseconds of one training batch, generated on the device."""
  batch_fn = stepping.make_batch_fn(exp, experiment.TRAIN)
  jax.block_until_ready(batch_fn(0))
  times = []
  for i in range(1, steps + 1):
    t0 = time.perf_counter()
    jax.block_until_ready(batch_fn(i))
    times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(times)


def time_train_step(exp: experiment.Experiment, steps: int) -> float:
  """Median milliseconds of one training step on pre-generated batches."""
  state = experiment.init_state(exp)
  train_step = stepping.make_train_step(exp)
  batch_fn = stepping.make_batch_fn(exp, experiment.TRAIN)
  batches = jax.block_until_ready([batch_fn(i) for i in range(steps + 1)])
  state, _ = train_step(state, batches[0])  # compile and warm up
  jax.block_until_ready(state)
  times = []
  for batch in batches[1:]:
    t0 = time.perf_counter()
    state, metrics = train_step(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(times)


def main(argv):
  del argv
  machine.setup()
  if _GENERATION.value:
    time_pathfinder_generation(_GENERATION.value)
  lra_dirs = _LRA_DIRS.value
  if _LRA_FILES.value:
    lra_dirs = write_lra_files(_LRA_FILES.value)
  task_args = parse_pairs(_TASK_ARGS.value)
  for name in filter(None, _TASKS.value.split(",")):
    try:
      config = config_of(name, _QUICK.value, _MODEL.value, lra_dirs)
      exp = experiment.build(adjust(config, _BATCH_SIZE.value, task_args))
    except ConfigError as e:
      machine.emit(dict(task=name, error=str(e)))
      continue
    gen_ms = time_generator(exp, _STEPS.value)
    try:
      step_ms = time_train_step(exp, _STEPS.value)
    except (TypeError, ValueError) as e:  # a model that cannot serve this task
      step_ms = None
      print(f"# {name}: no train step with {_MODEL.value}: {type(e).__name__}")
    machine.emit(dict(
        task=name, quick=_QUICK.value, model=_MODEL.value,
        batch=exp.train.batch_size, length=exp.task.io.length,
        generator_ms=round(gen_ms, 3),
        step_ms=None if step_ms is None else round(step_ms, 2),
        ratio=None if step_ms is None else round(gen_ms / step_ms, 5),
        device=jax.devices()[0].device_kind))


if __name__ == "__main__":
  app.run(main)
