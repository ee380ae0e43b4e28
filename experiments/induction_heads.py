"""Induction heads (Mamba's form): predict the token that followed the special token.

  python launch.py --config=experiments/induction_heads.py:quick --workdir=runs/induction
  python launch.py --config=experiments/induction_heads.py:model=lstm,length=256 --workdir=runs/induction256
  python launch.py --config=experiments/induction_heads.py:model=mamba --workdir=runs/induction_mamba

  Extrapolation sweep at CPU scale (train at length 64, test up to 1024):
  python launch.py --config=experiments/induction_heads.py:cpu --mode=sweep --jobs=2 --workdir=runs/induction_cpu

Arguments: model (a name in seqjax.models.MODELS; mamba is the paper's model, rglru (Hawk) its
gated-linear-recurrence rival), length (training L; 256 as in the paper, or 32
when quick), quick (a run that finishes on a laptop CPU in well under a minute),
cpu (the sweep's CPU scale, `CPU`), init (mamba's and rglru's `model.init`:
flax, the default, or authors: as state-spaces/mamba and recurrentgemma
initialise them; docs/reproductions.md runs `cpu,init=authors`). Evaluation also runs at longer lengths
(task.eval_lengths: 512, 1024, 4096; 64, 128 when quick; CPU["eval_lengths"] with
cpu), logged as splits eval_len<N> and test_len<N>.

The sweep (`get_sweep`) puts the selective recurrences beside the gated and the
time-invariant ones and attention with absolute (sinusoidal) and relative (RoPE)
positions, each at both learning rates of `LEARNING_RATES` and both seeds; the
report chooses the learning rate per model on the validation stream at the
training length and gives the test-stream accuracy at every length. Without
`cpu` it runs at the paper's scale (train at 256, 2 layers of width 64; one GPU).
The CPU scale was fixed from step-time estimates before any run, not from
results: Mamba's step is the largest (about 4x the LSTM's at equal width), and
1,000 steps of batch 32 keep the whole sweep near 15 minutes on 2 cores.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import sweep
from seqjax import tasks
from seqjax.models import selective

MODELS = ("lstm", "gru", "lru", "mamba", "rglru")
POSITIONAL = ("sinusoidal", "rope")  # the transformer's, a point each
LEARNING_RATES = (1e-3, 3e-3)
SEEDS = (0, 1)
CPU = dict(length=64, eval_lengths=(128, 256, 512, 1024), steps=1000, batch_size=32)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", length=int, quick=False, cpu=False,
                           init="flax")
  configs.check_choice("arg", "init", args.init, selective.INITS)
  # the selective recurrences' initialisation (no other model has the field)
  init = dict(init=args.init) if args.model in ("mamba", "rglru") else {}
  default_length = 32 if args.quick else CPU["length"] if args.cpu else 256
  task = tasks.task_config("induction_heads", length=args.length or default_length)
  if args.quick:
    task.eval_lengths = (64, 128)
  elif args.cpu:
    task.eval_lengths = CPU["eval_lengths"]
  train = dict(experiment_config.SYNTHETIC_TRAIN, steps=20000)
  if args.cpu:
    train.update(steps=CPU["steps"], batch_size=CPU["batch_size"], warmup_steps=100,
                 eval_every=CPU["steps"] // 2, checkpoint_every=CPU["steps"] // 2,
                 eval_batches=8)
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=64, num_layers=2, **init),
      quick_model=dict(width=32, num_layers=1, **init),
      train=train, quick_train=experiment_config.QUICK_TRAIN)


# No SWEEP_AXIS: one training length; the report's second table gives the
# longer test lengths (the task's extra test sets).
def get_sweep(arg: str | None = None) -> list[dict]:
  configs.parse_arg(arg, model=str, length=int, quick=False, cpu=False, init="flax")
  architectures = sweep.chain(
      sweep.values("arg.model", MODELS),
      sweep.product(sweep.values("arg.model", ["transformer"]),
                    sweep.values("model.positional", POSITIONAL)))
  return sweep.product(architectures,
                       sweep.values("train.learning_rate", LEARNING_RATES),
                       sweep.values("train.seed", SEEDS))
