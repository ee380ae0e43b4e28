"""The one entry point: parses flags, sets up logging, calls the library.

  python launch.py --config=experiments/copy_memory.py:quick --workdir=runs/copy
  python launch.py --workdir=runs/copy --mode=eval [--step=N]
  python launch.py --workdir=runs/t2i --mode=generate [--prompt="the digit 7"]

This file is intentionally short; everything else is an importable library.
"""

import glob
import json
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

# The README's main job; tests/test_launch.py checks that the README says the same.
MAIN_JOB = ("python launch.py --config=experiments/long_dependency.py:quick "
            "--mode=sweep --jobs=2 --workdir=runs/long_dependency_quick")
MODES = ("train", "eval", "sweep", "report", "generate")
# The modes that use each mode-specific flag; any other mode refuses it.
FLAG_MODES = {"config": ("train", "eval", "sweep"), "step": ("eval", "generate"),
              "eval_batches": ("eval",), "jobs": ("sweep",),
              "sweep_shard": ("sweep",), "group_size": ("sweep",),
              "prompt": ("generate",), "num_samples": ("generate",),
              "temperature": ("generate",), "top_k": ("generate",),
              "seed": ("generate",)}

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, optionally with :ARGS.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.")
_MODE = flags.DEFINE_string("mode", "train", f"One of {', '.join(MODES)}.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host: host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "Multi-host: index of this process.")
_JOBS = flags.DEFINE_integer("jobs", 1, "--mode=sweep: trials run at once.")
_SHARD = flags.DEFINE_string("sweep_shard", None,
                             "--mode=sweep: I/N, run only the I-th of N slices.")
_GROUP_SIZE = flags.DEFINE_integer(
    "group_size", None, "--mode=sweep: most trials trained together as one "
    "program (default: 8 on a CPU, 32 with an accelerator).")
_STEP = flags.DEFINE_integer("step", None, "--mode=eval, generate: checkpoint "
                             "step (default: the best by the headline metric).")
_EVAL_BATCHES = flags.DEFINE_integer(
    "eval_batches", None, "--mode=eval: batches per split (default: the run's "
    "train.eval_batches; a dataset task's whole split).")
_PROMPT = flags.DEFINE_multi_string(
    "prompt", None, "--mode=generate: a caption (text_to_image) or token ids; "
    "repeatable.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 10,
                                    "--mode=generate: samples per prompt.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0,
                                  "--mode=generate: 0 is greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "--mode=generate: sample from the K "
                              "most likely tokens (0: all).")
_SEED = flags.DEFINE_integer("seed", 0, "--mode=generate: sampling seed.")


def usage() -> str:
  here = os.path.dirname(os.path.abspath(__file__))
  names = sorted(os.path.basename(p) for p in
                 glob.glob(os.path.join(here, "experiments", "*.py"))
                 if not os.path.basename(p).startswith("_"))
  return "\n".join([
      "usage: python launch.py --config=experiments/NAME.py[:ARGS] --workdir=DIR "
      "[--config.KEY=VALUE ...] [--mode=" + "|".join(MODES) + "]",
      "experiments: " + ", ".join(names),
      "main job:    " + MAIN_JOB,
  ])


def main(argv):
  del argv
  if flags.FLAGS["verbosity"].using_default_value:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  from seqjax import parallel  # pylint: disable=import-outside-toplevel
  from seqjax import train  # pylint: disable=import-outside-toplevel
  from seqjax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  try:
    parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                        _PROCESS_ID.value)
    if _MODE.value not in MODES:
      raise ConfigError(f"--mode={_MODE.value!r} is not allowed; choose one of "
                        f"{', '.join(MODES)}.")
    check_mode_flags(_MODE.value)
    if not _WORKDIR.value:
      raise ConfigError("--workdir is required.")
    from seqjax import configs, run_files  # pylint: disable=import-outside-toplevel
    run_files.check_name_length(_WORKDIR.value)
    if _MODE.value == "generate":
      from seqjax import generation  # pylint: disable=import-outside-toplevel
      result = generation.run(_WORKDIR.value, _PROMPT.value, _NUM_SAMPLES.value,
                              _TEMPERATURE.value, _TOP_K.value, _SEED.value,
                              _STEP.value)
      print(json.dumps(result, indent=2))
      return 0
    if _MODE.value == "sweep":
      from seqjax import report, sweep  # pylint: disable=import-outside-toplevel
      spec = configs.config_flag(sys.argv)
      if spec is None:
        raise ConfigError("--mode=sweep needs --config=experiments/NAME.py[:ARGS].")
      run_files.check_writable(_WORKDIR.value)
      path, arg = spec
      counts = sweep.run(path, arg, _WORKDIR.value, _JOBS.value,
                         _SHARD.value, _GROUP_SIZE.value,
                         overrides=configs.overrides_from_argv(sys.argv, _CONFIG.value))
      report.write(_WORKDIR.value)
      if counts["interrupted"]:
        return 130
      return 1 if counts["failed"] or counts["held"] else 0
    if _MODE.value == "report":
      from seqjax import diagnostics, report  # pylint: disable=import-outside-toplevel
      if os.path.exists(os.path.join(_WORKDIR.value, "config.json")):
        diagnostics.run(_WORKDIR.value)  # a single run
      elif os.path.exists(os.path.join(_WORKDIR.value, "results.jsonl")):
        report.write(_WORKDIR.value)     # a sweep
      else:
        raise ConfigError(
            f"--mode=report: --workdir={_WORKDIR.value} holds neither a run "
            "(config.json) nor a sweep (results.jsonl); give the workdir of a "
            "--mode=train or --mode=sweep run.")
      print(f"wrote the report under {_WORKDIR.value}")
      return 0
    if _MODE.value == "eval":
      if _CONFIG.value is not None:
        run_files.check(_WORKDIR.value, _CONFIG.value)
      result = train.evaluate_checkpoint(_WORKDIR.value, _STEP.value,
                                         eval_batches=_EVAL_BATCHES.value)
      print(json.dumps(result, indent=2))
      return 0
    if _CONFIG.value is None:
      print(usage())
      return 2
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    print(json.dumps(summary, indent=2))
    if summary["status"] == "interrupted":
      print(f"interrupted by {summary['interrupted_by']} at step "
            f"{summary['step']}; rerun the same command to resume.",
            file=sys.stderr)
      return 130
    return 0 if summary["status"] == "completed" else 1
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


def check_mode_flags(mode: str) -> None:
  """Refuses a flag given to a mode that cannot use it."""
  from seqjax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  for name, modes in FLAG_MODES.items():
    if flags.FLAGS[name].present and mode not in modes:
      raise ConfigError(
          f"--{name} is not used by --mode={mode}; it serves --mode="
          f"{' and --mode='.join(modes)}. Drop it.")


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, with bad config input reported in a paragraph, no traceback:
  the --config file is loaded and its get_config run before absl does, so that
  a missing file, a syntax error or an exception in it names the file and line."""
  from seqjax import configs  # pylint: disable=import-outside-toplevel
  from seqjax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  spec = configs.config_flag(argv)
  if spec is not None:
    try:
      configs.load_config(*spec)
    except ConfigError as e:
      print(f"error: {e}" + (f"\n{usage()}" if not os.path.isfile(spec[0]) else ""),
            file=sys.stderr)
      sys.exit(2)
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError) as e:
    print(f"error: {explain_flag_error(e, argv)}", file=sys.stderr)
    sys.exit(2)


def explain_flag_error(e: Exception, argv: list[str]) -> str:
  text = str(e)
  if isinstance(e, (AttributeError, KeyError)):  # --config.a.b=... names no key
    match = re.search(r"\w+", text)
    key = match.group(0) if match else text
    bad = next((a.split("=")[0][len("--config."):] for a in argv
                if a.startswith("--config.") and key in a.split("=")[0].split(".")),
               key)
    parent = bad.rsplit(".", 1)[0] if "." in bad else ""
    from seqjax import configs  # pylint: disable=import-outside-toplevel
    config = configs.load_config(*(configs.config_flag(argv) or ("", None)))
    allowed = configs.section_keys(config, parent)
    return (f"unknown config key {bad!r} in --config.{bad}; keys allowed under "
            f"config{'.' + parent if parent else ''}: {allowed}.")
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  return " ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else text


if __name__ == "__main__":
  if len(sys.argv) == 1:
    print(usage())
    sys.exit(2)
  app.run(main, flags_parser=parse_flags)
