"""Set-up shared by several test files (imported as `helpers`: tests/ is on
sys.path, as for `from test_recurrent import ...`)."""

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_config(task, model, **train_values) -> ml_collections.ConfigDict:
  """A run's config: `task` and `model` (made by tasks.task_config and
  models.model_config), the train defaults updated with `train_values`."""
  from seqjax import configs  # pylint: disable=import-outside-toplevel
  config = ml_collections.ConfigDict()
  config.task = task
  config.model = model
  config.train = configs.train_defaults()
  config.train.update(**train_values)
  return config


def tiny_copy_memory_config() -> ml_collections.ConfigDict:
  """A copy-memory LSTM run that trains in about a second, with checkpoints at
  steps 4 and 6."""
  from seqjax import models, tasks  # pylint: disable=import-outside-toplevel
  return run_config(
      tasks.task_config("copy_memory", delay=4, num_symbols=2, alphabet=4),
      models.model_config("lstm", width=8),
      steps=6, batch_size=4, learning_rate=1e-2, warmup_steps=1, log_every=1,
      eval_every=2, eval_batches=2, checkpoint_every=2, keep_checkpoints=2)


def launched(workdir, *args):
  """Runs launch.py with `args` into `workdir` to the end (exit status 0);
  returns workdir."""
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch.py"), *args,
       f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True,
      timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  return workdir


# A line of absl's log ("I1206 03:17:52.436360 1397... file.py:849] ...").
ABSL_LOG_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w.]+:\d+\] ")


def refusal(result: subprocess.CompletedProcess) -> str:
  """The paragraph of a launch refused with exit status 2, asserted to be the one
  thing on stderr besides absl's log lines, the last, with no traceback."""
  assert result.returncode == 2, result.stderr[-3000:]
  for noise in ("Traceback", "Exception ignored", "TensorStore("):
    assert noise not in result.stderr, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines()
           if not ABSL_LOG_LINE.match(line)]
  text = "\n".join(lines).strip()
  assert text.startswith("error: ") and "\n\n" not in text, result.stderr[-3000:]
  assert result.stderr.rstrip().endswith(text), result.stderr[-3000:]
  return text


def load_experiment(name):
  """The module experiments/<name>.py, loaded from its file."""
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(ROOT, "experiments", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def compiled_grad_sizes(name, scan, io, lengths=(64, 4096)):
  """The length of the lowered text of the parameter gradient of model `name`
  (width 8, the given scan) at each sequence length: nothing is compiled."""
  from seqjax import models  # pylint: disable=import-outside-toplevel
  sizes = []
  for length in lengths:
    at_length = dataclasses.replace(io, length=length)
    model = models.MODELS[name](width=8, scan=scan).build(at_length)
    tokens = jnp.zeros((2, length), jnp.int32)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens))["params"]  # pylint: disable=cell-var-from-loop
    grad = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({"params": p}, tokens))))  # pylint: disable=cell-var-from-loop
    sizes.append(len(grad.lower(params).as_text()))
  return sizes


def fake_trial(workdir, name, overrides, summary, task="copy_memory", model="lstm",
               axis=None):
  """A sweep's trial directory as the runner and a finished run leave it:
  trial.json, config.json (task and model names only), summary.json (status
  completed and mode max unless `summary` says otherwise)."""
  from seqjax import run_files, sweep  # pylint: disable=import-outside-toplevel
  trial_dir = os.path.join(workdir, name)
  sweep.write_trial(trial_dir, overrides, axis)
  run_files.write_json(os.path.join(trial_dir, "config.json"),
                       {"task": {"name": task}, "model": {"name": model}})
  run_files.write_json(os.path.join(trial_dir, "summary.json"),
                       {"status": "completed", "mode": "max", **summary})
