"""Induction heads (Mamba's form): predict the token that followed the special token.

  python launch.py --config=experiments/induction_heads.py:quick --workdir=runs/induction
  python launch.py --config=experiments/induction_heads.py:model=lstm,length=256 --workdir=runs/induction256
  python launch.py --config=experiments/induction_heads.py:model=mamba --workdir=runs/induction_mamba

Arguments: model (a name in seqjax.models.MODELS; mamba is the paper's model, rglru (Hawk) its
gated-linear-recurrence rival), length (training L; 256 as in the paper, or 32
when quick), quick (a run that finishes on a laptop CPU in well under a minute). Evaluation also
runs at longer lengths (task.eval_lengths: 512, 1024, 4096; 64, 128 when quick), logged as splits
eval_len<N> and test_len<N>.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", length=int, quick=False)
  task = tasks.task_config(
      "induction_heads", length=args.length or (32 if args.quick else 256))
  if args.quick:
    task.eval_lengths = (64, 128)
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=64, num_layers=2),
      quick_model=dict(width=32, num_layers=1),
      train=dict(experiment_config.SYNTHETIC_TRAIN, steps=20000),
      quick_train=experiment_config.QUICK_TRAIN)
