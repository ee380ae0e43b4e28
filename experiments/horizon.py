"""The memory horizon: how far back each architecture remembers, and its cost.

For each architecture and task, the longest dependency length it solves within
the training budget of experiments/long_dependency.py (its configs, unchanged
but for evaluating more often), found by a search (seqjax.horizon): start
short, double while solved, bisect between the longest length solved and the
shortest failed until their ratio is below RESOLUTION. Solved: the test
accuracy, mean over seeds at the learning rate chosen on validation, at least
THRESHOLD of the way from chance to 1. Each probe is one trial group (the
learning rates x seeds of long_dependency, 6 trials).

  Quick (a 2-core CPU: 14 min 11 s on the 2-core VM of 2026-12-06, docs/horizon.md):
  python launch.py --config=experiments/horizon.py:quick --mode=sweep --jobs=2 --workdir=runs/horizon_quick

  Full (one GPU; not yet timed):
  python launch.py --config=experiments/horizon.py --mode=sweep --workdir=runs/horizon

Arguments: those of long_dependency (task, model, length, quick, selective);
`get_search` reads quick and selective. Lengths are `arg.length`: copy memory's
delay T and selective copy's length L. The window model (k = 16) is the
built-in check: its horizon must come out within a factor 2 of k (copy memory's
recall is T + 4 positions back in the quick variant, so it solves T <= 11).

The quick budget: long_dependency's quick trials (600 steps of batch 16, width
64, learning rates 1e-3, 3e-3, 1e-2, 2 seeds) with an evaluation every 100
steps, so that a trial that reaches the task's solved level stops early
(`train.stop_when_solved`). Measured: 43 probes, 258 trials; the transformer's
search on copy memory (delays 4 to 128, then 91 and 108) is the longest chain,
which is why ready probes start costliest first. `quick,selective` adds mamba
and rglru (4-5x the LSTM's step): not sized to 15 minutes.
"""

import os

import ml_collections

from seqjax import configs
from seqjax import sweep

_LONG = configs.load_module(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "long_dependency.py"))
TASKS = ("copy_memory", "selective_copy")
THRESHOLD = 0.9      # of the way from chance to perfect accuracy
RESOLUTION = 1.25    # bisect until shortest failed / longest solved < this
QUICK_EVAL_EVERY = 100
LENGTHS = {  # (start, max_length) of each task's searches
    "quick": {"copy_memory": (4, 128), "selective_copy": (16, 256)},
    "full": {"copy_memory": (16, 1024), "selective_copy": (64, 8192)},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """One trial: long_dependency's config, evaluated every QUICK_EVAL_EVERY
  steps when quick, and stopped once solved."""
  config = _LONG.get_config(arg)
  if configs.parse_arg(arg, task=str, model=str, length=int, quick=False,
                       selective=False).quick:
    config.train.eval_every = QUICK_EVAL_EVERY
  config.train.stop_when_solved = True
  return config


def get_search(arg: str | None = None) -> dict:
  """The horizon searches (seqjax.horizon.plan_from): one per task and model."""
  args = configs.parse_arg(arg, task=str, model=str, length=int, quick=False,
                           selective=False)
  variant = "quick" if args.quick else "full"
  models = _LONG.MODELS + (_LONG.SELECTIVE if args.selective or not args.quick
                           else ())
  return dict(
      threshold=THRESHOLD, resolution=RESOLUTION, length_key="arg.length",
      grid=sweep.product(sweep.values("train.learning_rate", _LONG.LEARNING_RATES),
                         sweep.values("train.seed", _LONG.SEEDS)),
      searches=[dict(overrides={"arg.task": task, "arg.model": model},
                     start=LENGTHS[variant][task][0],
                     max_length=LENGTHS[variant][task][1])
                for task in TASKS for model in models])
