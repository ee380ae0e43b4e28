"""RNN versus Transformer on long-term dependency: the project's headline.

Compares window, rnn, lstm, gru, lru and transformer on copy_memory (dependency:
the delay T) and selective_copy (dependency: the length L, symbols anywhere in
it) over a range of dependency lengths, several seeds and a learning-rate grid.

  Quick (the README's main job; a 2-core CPU, under 10 minutes):
  python launch.py --config=experiments/long_dependency.py:quick --mode=sweep --jobs=2 --workdir=runs/long_dependency_quick

  Full (one GPU, about an hour; not yet timed on one):
  python launch.py --config=experiments/long_dependency.py --mode=sweep --workdir=runs/long_dependency

  One trial: python launch.py --config=experiments/long_dependency.py:task=copy_memory,model=gru,length=64 --workdir=runs/one

Arguments: task (copy_memory | selective_copy), model (window, rnn, lstm, gru,
lru, transformer), length (the dependency length), quick. Every architecture
gets the same width, steps, batch and learning-rate grid; the window model sees
the last `window` positions, so it must fail once the dependency is longer.
The quick variant uses one learning rate for all (3e-3), the full one the grid
1e-3, 3e-3, 1e-2; both 2 seeds. These settings were fixed before any result was
seen.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import sweep
from seqjax import tasks

MODELS = ("window", "rnn", "lstm", "gru", "lru", "transformer")
LENGTHS = {  # dependency lengths swept, per task
    "quick": {"copy_memory": (4, 16, 48), "selective_copy": (16, 48, 128)},
    "full": {"copy_memory": (16, 64, 256, 512),
             "selective_copy": (128, 512, 2048, 4096)},
}


def model_settings(name: str, quick: bool) -> dict:
  width = 64 if quick else 128
  return {
      "window": dict(width=width, window=16, num_layers=2),
      "transformer": dict(width=width, num_layers=2, num_heads=4 if not quick else 2,
                          positional="sinusoidal"),
  }.get(name, dict(width=width, num_layers=1 if quick else 2))


def task_section(name: str, length: int, quick: bool) -> ml_collections.ConfigDict:
  if name == "copy_memory":
    return tasks.task_config(name, delay=length, num_symbols=4 if quick else 10,
                             alphabet=8)
  return tasks.task_config(name, length=length, num_tokens=4 if quick else 16,
                           vocab=10 if quick else 16)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, task="copy_memory", model="lstm", length=int,
                           quick=False)
  variant = "quick" if args.quick else "full"
  length = args.length or LENGTHS[variant][args.task][0]
  return experiment_config.build(
      task_section(args.task, length, args.quick), args.model, args.quick,
      model_settings=model_settings(args.model, args.quick),
      train=dict(steps=3000, batch_size=64, learning_rate=3e-3, warmup_steps=200,
                 grad_clip=1.0, eval_every=1000, checkpoint_every=1000,
                 eval_batches=8),
      quick_train=dict(steps=600, batch_size=16, warmup_steps=50, log_every=100,
                       eval_every=300, checkpoint_every=300, eval_batches=8))


def get_sweep(arg: str | None = None) -> list[dict]:
  quick = configs.parse_arg(arg, task=str, model=str, length=int, quick=False).quick
  variant = "quick" if quick else "full"
  per_task = [
      sweep.product(sweep.values("arg.task", [task]),
                    sweep.values("arg.model", MODELS),
                    sweep.values("arg.length", LENGTHS[variant][task]))
      for task in ("copy_memory", "selective_copy")]
  return sweep.product(
      sweep.chain(*per_task),
      sweep.values("train.learning_rate", [3e-3] if quick else [1e-3, 3e-3, 1e-2]),
      sweep.values("train.seed", [0, 1]))
