"""RNN versus Transformer on long-term dependency: the project's headline.

Compares window, rnn, lstm, gru, lru, transformer, and in the full variant (or
with `quick,selective`) the selective recurrences mamba and rglru, on
copy_memory (dependency: the delay T) and selective_copy (dependency: the length
L, symbols anywhere in it) over a range of dependency lengths, a learning-rate
grid and several seeds.

  Quick (the README's main job; a 2-core CPU: 6-11 minutes by machine, see the README):
  python launch.py --config=experiments/long_dependency.py:quick --mode=sweep --jobs=2 --workdir=runs/long_dependency_quick

  Full (one GPU, about an hour; not yet timed on one):
  python launch.py --config=experiments/long_dependency.py --mode=sweep --workdir=runs/long_dependency

  One trial: python launch.py --config=experiments/long_dependency.py:task=copy_memory,model=gru,length=64 --workdir=runs/one

Arguments: task (copy_memory | selective_copy), model (see MODELS), length (the
dependency length), quick. Every architecture gets the same width, steps, batch
and learning-rate grid (1e-3, 3e-3, 1e-2, chosen per point on the validation
stream by the report), 2 seeds; the window model sees the last `window`
positions, so it must fail once the dependency is longer. The trials of one
(task, model, length) point differ only in learning rate and seed, so the sweep
trains each point's 6 trials as one group (one vmapped program).

The quick variant's budget was fixed from a timing run of the whole sweep with
mamba and rglru (200 steps; its step rates and per-group overhead, not its
accuracies; docs/benchmarks.md): one step of all 48 groups took 2.2 s of one
core, half of it Mamba and the RG-LRU (5x and 4x the LSTM's step at equal width
on this CPU), and each group about 9 s of start-up, compilation and
evaluation. Under 10 minutes on the 2-core development CPU that leaves about
300 steps with them, or QUICK_STEPS = 600 steps of batch 16 without them. The
quick variant keeps the six architectures at 600 steps; `quick,selective` adds
mamba and rglru (about 16 minutes). Mamba uses its sequential scan in the quick
variant, about 3x faster than the parallel one on a CPU, and in the full one
its default, recompute (the fastest measured at length 4096; docs/benchmarks.md).
These settings were fixed before any result was seen.

The quick variant stops a trial once it is solved (`train.stop_when_solved`:
validation accuracy 1.0, the task's `solved_level`, at an evaluation every 200
steps; it is then tested at that step), the same rule for every model; a group
whose every trial is solved ends early. Set before this variant's rerun
(2026-12-06), from the previous run's evaluations at step 300: three groups
(window, LRU and transformer at delay 4) were solved in all 6 trials.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import sweep
from seqjax import tasks

MODELS = ("window", "rnn", "lstm", "gru", "lru", "transformer")
SELECTIVE = ("mamba", "rglru")  # in the full variant; the quick one with `selective`
LEARNING_RATES = (1e-3, 3e-3, 1e-2)
SEEDS = (0, 1)
QUICK_STEPS = 600
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
      "mamba": dict(width=width, num_layers=1 if quick else 2,
                    scan="sequential" if quick else "recompute"),
  }.get(name, dict(width=width, num_layers=1 if quick else 2))


def task_section(name: str, length: int, quick: bool) -> ml_collections.ConfigDict:
  if name == "copy_memory":
    return tasks.task_config(name, delay=length, num_symbols=4 if quick else 10,
                             alphabet=8)
  return tasks.task_config(name, length=length, num_tokens=4 if quick else 16,
                           vocab=10 if quick else 16)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, task="copy_memory", model="lstm", length=int,
                           quick=False, selective=False)
  variant = "quick" if args.quick else "full"
  length = args.length or LENGTHS[variant][args.task][0]
  return experiment_config.build(
      task_section(args.task, length, args.quick), args.model, args.quick,
      model_settings=model_settings(args.model, args.quick),
      train=dict(steps=3000, batch_size=64, learning_rate=3e-3, warmup_steps=200,
                 grad_clip=1.0, eval_every=1000, checkpoint_every=1000,
                 eval_batches=8),
      quick_train=dict(steps=QUICK_STEPS, batch_size=16, warmup_steps=100,
                       log_every=100, eval_every=QUICK_STEPS // 3,
                       checkpoint_every=QUICK_STEPS // 3, eval_batches=8,
                       stop_when_solved=True))


SWEEP_AXIS = "arg.length"  # the report plots each task's metric against it


def get_sweep(arg: str | None = None) -> list[dict]:
  args = configs.parse_arg(arg, task=str, model=str, length=int, quick=False,
                           selective=False)
  variant = "quick" if args.quick else "full"
  models = MODELS + (SELECTIVE if args.selective or not args.quick else ())
  per_task = [
      sweep.product(sweep.values("arg.task", [task]),
                    sweep.values("arg.model", models),
                    sweep.values("arg.length", LENGTHS[variant][task]))
      for task in ("copy_memory", "selective_copy")]
  return sweep.product(
      sweep.chain(*per_task),
      sweep.values("train.learning_rate", LEARNING_RATES),
      sweep.values("train.seed", SEEDS))
