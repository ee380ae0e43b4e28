"""Flip-flop language modelling: at every read, the bit of the last write.

  python launch.py --config=experiments/flip_flop.py:quick --workdir=runs/flipflop
  python launch.py --config=experiments/flip_flop.py:model=lstm,num_instructions=256 --workdir=runs/flipflop256

Arguments: model (a name in seqjax.models.MODELS), num_instructions (N, sequence length 2N; 128, or
16 when quick), p_ignore (0.8 as in the paper), quick (a run that finishes on a laptop CPU in well
under a minute). The dense (p_i = 0.1) and sparse (p_i = 0.98) sets are logged as eval_dense,
eval_sparse, test_dense, test_sparse.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", num_instructions=int,
                           p_ignore=0.8, quick=False)
  task = tasks.task_config(
      "flip_flop", p_ignore=args.p_ignore,
      num_instructions=args.num_instructions or (16 if args.quick else 128))
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=128, num_layers=1), quick_model=dict(width=32),
      train=dict(experiment_config.SYNTHETIC_TRAIN, steps=10000),
      quick_train=experiment_config.QUICK_TRAIN)
