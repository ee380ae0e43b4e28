"""Multi-query associative recall (Zoology): recall the value of each queried key.

  python launch.py --config=experiments/associative_recall.py:quick --workdir=runs/mqar
  python launch.py --config=experiments/associative_recall.py:model=lstm,length=256,num_pairs=16 --workdir=runs/mqar256

Arguments: model (a name in seqjax.models.MODELS), length (L; 64, or 32 when quick), num_pairs (P; 4,
or 2 when quick), vocab (V; 8192 as in Zoology, or 64 when quick), quick (a run that finishes on a
laptop CPU in well under a minute). Zoology's grid: (L, P) in (64, 4), (128, 8), (256, 16).
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", length=int, num_pairs=int,
                           vocab=int, quick=False)
  task = tasks.task_config(
      "associative_recall", length=args.length or (32 if args.quick else 64),
      num_pairs=args.num_pairs or (2 if args.quick else 4),
      vocab=args.vocab or (64 if args.quick else 8192))
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=128, num_layers=2),
      quick_model=dict(width=32, num_layers=1),
      train=dict(experiment_config.SYNTHETIC_TRAIN, steps=20000),
      quick_train=experiment_config.QUICK_TRAIN)
