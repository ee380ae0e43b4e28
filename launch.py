"""The one entry point: flags, logging, a {mode: function} dispatch into the
library. `python launch.py` lists the experiments; docs/usage.md every mode."""

import glob
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from seqjax import configs
from seqjax import diagnostics
from seqjax import generation
from seqjax import horizon
from seqjax import parallel
from seqjax import report
from seqjax import run_files
from seqjax import sweep
from seqjax import train
from seqjax.errors import ConfigError

# The README's main job; tests/test_launch.py checks that the README says the same.
MAIN_JOB = ("python launch.py --config=experiments/long_dependency.py:quick "
            "--mode=sweep --jobs=2 --workdir=runs/long_dependency_quick")


def _print(result, text: str | None = None) -> int:
  return print(text or json.dumps(result, indent=2)) or 0


def run_train(workdir: str) -> int:
  summary = train.train_and_evaluate(_CONFIG.value, workdir)
  return _print(summary) or train.exit_status(summary)


def run_sweep(workdir: str) -> int:
  path, _, arg = config_flags.get_config_filename(FLAGS["config"]).partition(":")
  search = hasattr(configs.load_module(path), "get_search")  # a horizon
  counts = (horizon.run if search else sweep.run)(
      path, arg or None, workdir, FLAGS.jobs, FLAGS.sweep_shard, FLAGS.group_size,
      overrides=config_flags.get_override_values(FLAGS["config"]))
  if not search:
    report.write(workdir)
  return sweep.exit_status(counts)


MODES = {
    "train": run_train,
    "eval": lambda w: _print(train.evaluate_checkpoint(
        w, FLAGS.step, FLAGS.eval_batches, _CONFIG.value)),
    "sweep": run_sweep,
    "report": lambda w: _print(report.write(w), f"wrote the report under {w}"),
    "generate": lambda w: _print(generation.run(
        w, FLAGS.prompt, FLAGS.num_samples, FLAGS.temperature, FLAGS.top_k,
        FLAGS.seed, FLAGS.step)),
    "diagnose": lambda w: _print(diagnostics.run(w), f"wrote the report under {w}")}
# (define, name, default, help, the modes that use it): other modes refuse it.
MODE_FLAGS = (
    (flags.DEFINE_integer, "jobs", 1, "groups at once", "sweep"),
    (flags.DEFINE_string, "sweep_shard", None, "I/N, the I-th of N slices", "sweep"),
    (flags.DEFINE_integer, "group_size", None, "trials per program (default 8 on "
     "a CPU, 32 with an accelerator)", "sweep"),
    (flags.DEFINE_integer, "step", None, "checkpoint (default: the best)", "eval",
     "generate"),
    (flags.DEFINE_integer, "eval_batches", None, "per split (default: the run's; "
     "a dataset's whole split)", "eval"),
    (flags.DEFINE_multi_string, "prompt", None, "a caption or token ids", "generate"),
    (flags.DEFINE_integer, "num_samples", 10, "per prompt", "generate"),
    (flags.DEFINE_float, "temperature", 1.0, "0 is greedy", "generate"),
    (flags.DEFINE_integer, "top_k", 0, "the K likeliest tokens (0: all)", "generate"),
    (flags.DEFINE_integer, "seed", 0, "sampling seed", "generate"))
for define, name, default, text, *modes in MODE_FLAGS:
  define(name, default, f"--mode={'|'.join(modes)}: {text}.")
FLAG_MODES = {"config": ("train", "eval", "sweep"), **{f[1]: f[4:] for f in MODE_FLAGS}}
FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment file[:ARGS].")
flags.DEFINE_string("workdir", None, "Run (or sweep) directory.")
flags.DEFINE_enum("mode", "train", list(MODES), "What to do in --workdir.")
flags.DEFINE_string("coordinator_address", None, "Multi-host: jax.distributed's.")
flags.DEFINE_integer("num_processes", None, "Multi-host: how many processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")


def usage() -> str:
  names = sorted(map(os.path.basename, glob.glob(os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "experiments", "[!_]*.py"))))
  return (f"usage: python launch.py --config=experiments/NAME.py[:ARGS] --workdir=DIR "
          f"[--config.KEY=VALUE ...] [--mode={'|'.join(MODES)}]\n"
          f"experiments: {', '.join(names)}\nmain job:    {MAIN_JOB}")


def main(argv) -> int:
  del argv
  if not FLAGS["verbosity"].present:  # app.run sets INFO; Orbax logs every save
    logging.set_verbosity(logging.WARNING)
  parallel.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                      FLAGS.process_id)
  for name, modes in FLAG_MODES.items():  # a flag its mode cannot use: refused
    if FLAGS[name].present and FLAGS.mode not in modes:
      raise ConfigError(f"--{name} is not used by --mode={FLAGS.mode}; it serves "
                        f"--mode={' and --mode='.join(modes)}. Drop it.")
  if not FLAGS.workdir:
    raise ConfigError("--workdir is required.")
  if FLAGS.mode in ("train", "sweep") and _CONFIG.value is None:
    raise ConfigError(f"--mode={FLAGS.mode} needs --config=experiments/NAME.py"
                      "[:ARGS]; `python launch.py` lists the experiments.")
  run_files.check_name_length(FLAGS.workdir)
  return MODES[FLAGS.mode](FLAGS.workdir)


if __name__ == "__main__":
  if len(sys.argv) == 1:
    sys.exit(print(usage()) or 2)
  try:  # a bad --config or flag, any ConfigError: one paragraph and exit 2
    app.run(main, flags_parser=lambda argv: configs.check_command_line(argv)
            or FLAGS(argv))
  except (ConfigError, flags.Error) as e:
    sys.exit(print(f"error: {e}", file=sys.stderr) or 2)
