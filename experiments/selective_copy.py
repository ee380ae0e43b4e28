"""Selective copying (Mamba): copy M symbols scattered among blanks, in order, at the end.

  python launch.py --config=experiments/selective_copy.py:quick --workdir=runs/selcopy
  python launch.py --config=experiments/selective_copy.py:model=lstm,length=4096 --workdir=runs/selcopy4k
  python launch.py --config=experiments/selective_copy.py:model=mamba --workdir=runs/selcopy_mamba

Arguments: model (a name in seqjax.models.MODELS; mamba is the paper's model, rglru (Hawk) its
gated-linear-recurrence rival, lru and lstm non-selective baselines), length (L; 4096 as in the
paper, or 32 when quick), num_tokens (M; 16, or 4 when quick), quick (a run that finishes on a
laptop CPU in well under a minute). The paper's model size is 2 layers of width 64.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", length=int, num_tokens=int,
                           quick=False)
  task = tasks.task_config(
      "selective_copy", length=args.length or (32 if args.quick else 4096),
      num_tokens=args.num_tokens or (4 if args.quick else 16))
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=64, num_layers=2),
      quick_model=dict(width=32, num_layers=1),
      train=dict(experiment_config.SYNTHETIC_TRAIN, steps=20000),
      quick_train=experiment_config.QUICK_TRAIN)
