"""Reproductions of published long-dependency results (docs/reproductions.md).

Each claim is a variant, `claim=NAME`, at the scale sized for one GPU or, with
`quick`, at CPU scale (finishes on a 2-core CPU). Run a claim's sweep, then the
table:

  python launch.py --config=experiments/reproduce.py:claim=adding,quick --mode=sweep --jobs=2 --workdir=runs/reproduce/adding
  python launch.py --config=experiments/reproduce.py:claim=copy_memory,quick --mode=sweep --jobs=2 --workdir=runs/reproduce/copy_memory
  python launch.py --config=experiments/reproduce.py:claim=flip_flop,quick --mode=sweep --jobs=2 --group_size=2 --workdir=runs/reproduce/flip_flop
  python launch.py --config=experiments/reproduce.py:claim=mqar,quick --mode=sweep --jobs=2 --workdir=runs/reproduce/mqar
  python -m seqjax.reproductions --workdir=runs/reproduce   # table, error counts, plots

  GPU scale: the same without `quick` (not yet timed on a GPU).
  One trial: --config=experiments/reproduce.py:claim=adding,model=lstm,length=200,quick

Claims (the papers' settings beside ours in SCALES and docs/reproductions.md):
  adding       Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015: at T = 100
               and 200 the LSTM's MSE falls far below the 0.167 of always
               predicting 1; the tanh RNN stays at it.
  copy_memory  Arjovsky, Shah & Bengio 2016: which models leave the memoryless
               baseline 10 log 8 / (T + 20), and when.
  flip_flop    Liu et al. 2023: a 1-layer LSTM makes no errors on the
               in-distribution, sparse and dense sets; Transformers make rare
               errors ("glitches"). Errors are counted exactly afterwards.
  mqar         Arora et al. 2023 (Zoology): accuracy against width; attention
               solves every width, recurrent models need width that grows with
               the number of pairs.

Arguments: claim, model, length (the claim's dependency length: T, delay, N
instructions, or the MQAR length, whose number of pairs is length / 16 as in
Zoology's grid), width, quick. Every budget below was fixed from step-time
measurements before any result was seen, except MQAR's CPU scale: cut to one
learning rate, one seed and 1200 steps when the measured step times showed the
first plan would take 80 minutes, then, after its first points (length 256,
vocabulary 512) were all at chance after 1200 steps, to lengths 64 and 128 and
vocabulary 256 (docs/reproductions.md reports both). Learning rates are a grid
chosen per point on the validation stream by the report, where there is more
than one.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import sweep
from seqjax import tasks

CLAIMS = ("adding", "copy_memory", "flip_flop", "mqar")

# Per claim and scale: models, dependency lengths, widths, and the training
# budget. "cpu" (`quick`) finishes on a 2-core CPU; "gpu" is sized for one GPU.
SCALES = {
    "adding": {
        "cpu": dict(models=("rnn", "lstm"), lengths=(100, 200), widths=(128,),
                    steps=2000, batch_size=32, learning_rates=(1e-3, 3e-3),
                    seeds=(0, 1)),
        "gpu": dict(models=("rnn", "lstm", "gru"), lengths=(100, 200, 400, 750),
                    widths=(128,), steps=20000, batch_size=64,
                    learning_rates=(3e-4, 1e-3, 3e-3), seeds=(0, 1, 2)),
    },
    "copy_memory": {
        "cpu": dict(models=("rnn", "lstm", "gru", "lru", "transformer"),
                    lengths=(100, 200), widths=(64,), steps=1500, batch_size=32,
                    learning_rates=(1e-3,), seeds=(0, 1)),
        "gpu": dict(models=("rnn", "lstm", "gru", "lru", "mamba", "rglru",
                            "transformer"),
                    lengths=(100, 200, 300, 500), widths=(128,), steps=10000,
                    batch_size=64, learning_rates=(3e-4, 1e-3, 3e-3),
                    seeds=(0, 1, 2)),
    },
    "flip_flop": {
        "cpu": dict(models=("lstm", "transformer"), lengths=(128,), widths=(64,),
                    steps=2000, batch_size=16, learning_rates=(1e-3, 3e-3),
                    seeds=(0, 1)),
        "gpu": dict(models=("lstm", "transformer"), lengths=(128, 256),
                    widths=(128,), steps=10000, batch_size=64,
                    learning_rates=(3e-4, 1e-3, 3e-3), seeds=(0, 1, 2)),
    },
    "mqar": {
        "cpu": dict(models=("transformer", "lstm", "mamba", "rglru"),
                    lengths=(64, 128), widths=(16, 64), steps=1200,
                    batch_size=32, learning_rates=(1e-3,), seeds=(0,),
                    vocab=256),
        "gpu": dict(models=("transformer", "lstm", "gru", "lru", "mamba",
                            "rglru"),
                    lengths=(64, 128, 256), widths=(64, 128, 256, 512),
                    steps=20000, batch_size=64,
                    learning_rates=(3e-4, 1e-3, 3e-3, 1e-2), seeds=(0, 1),
                    vocab=8192),
    },
}
NUM_LAYERS = {"adding": 1, "copy_memory": 1, "flip_flop": 1, "mqar": 2}
TRANSFORMER_LAYERS = {"adding": 2, "copy_memory": 2, "flip_flop": 2, "mqar": 2}


def scale(claim: str, quick: bool) -> dict:
  if claim not in SCALES:
    raise configs.ConfigError(
        f"claim={claim!r} is not a reproduction; choose one of {', '.join(CLAIMS)}.")
  return SCALES[claim]["cpu" if quick else "gpu"]


def task_section(claim: str, length: int, s: dict) -> ml_collections.ConfigDict:
  if claim == "adding":
    return tasks.task_config("adding", length=length)
  if claim == "copy_memory":  # the paper's form: 10 symbols of 8, loss on all positions
    return tasks.task_config("copy_memory", delay=length, num_symbols=10,
                             alphabet=8, score="all")
  if claim == "flip_flop":  # trained at the paper's p_i = 0.8
    return tasks.task_config("flip_flop", num_instructions=length, p_ignore=0.8)
  return tasks.task_config("associative_recall", length=length,
                           num_pairs=length // 16, vocab=s["vocab"])


def model_settings(claim: str, model: str, width: int) -> dict:
  if model == "transformer":
    return dict(width=width, num_layers=TRANSFORMER_LAYERS[claim],
                num_heads=max(1, min(4, width // 16)), positional="sinusoidal")
  if model == "mamba":  # the sequential scan is the faster one on a CPU
    return dict(width=width, num_layers=NUM_LAYERS[claim], scan="sequential")
  return dict(width=width, num_layers=NUM_LAYERS[claim])


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, claim="adding", model=str, length=int,
                           width=int, quick=False)
  s = scale(args.claim, args.quick)
  model = args.model or s["models"][-1]
  length = args.length or s["lengths"][0]
  width = args.width or s["widths"][-1]
  steps = s["steps"]
  return experiment_config.build(
      task_section(args.claim, length, s), model, quick=False,
      model_settings=model_settings(args.claim, model, width),
      train=dict(steps=steps, batch_size=s["batch_size"],
                 learning_rate=s["learning_rates"][0], warmup_steps=100,
                 grad_clip=1.0, log_every=50, eval_every=steps // 6,
                 checkpoint_every=steps // 6, eval_batches=8))


SWEEP_AXIS = "arg.length"  # the report's x-axis; widths are series (MQAR)


def get_sweep(arg: str | None = None) -> list[dict]:
  args = configs.parse_arg(arg, claim="adding", model=str, length=int,
                           width=int, quick=False)
  s = scale(args.claim, args.quick)
  points = sweep.product(
      sweep.values("arg.model", [args.model] if args.model else s["models"]),
      sweep.values("arg.length", [args.length] if args.length else s["lengths"]),
      sweep.values("arg.width", [args.width] if args.width else s["widths"]))
  return sweep.product(points,
                       sweep.values("train.learning_rate", s["learning_rates"]),
                       sweep.values("train.seed", s["seeds"]))
