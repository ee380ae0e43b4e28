"""Adding problem: regress the sum of the two marked values of T.

  python launch.py --config=experiments/adding.py:quick --workdir=runs/adding
  python launch.py --config=experiments/adding.py:model=lstm,length=400 --workdir=runs/adding400

Arguments: model (a name in seqjax.models.MODELS), length (T; 200, or 20 when quick), quick (a run
that finishes on a laptop CPU in well under a minute).
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", length=int, quick=False)
  task = tasks.task_config(
      "adding", length=args.length or (20 if args.quick else 200))
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=128, num_layers=1), quick_model=dict(width=32),
      train=dict(steps=10000, batch_size=64, learning_rate=1e-3,
                 warmup_steps=200, eval_every=500, checkpoint_every=500),
      quick_train=experiment_config.QUICK_TRAIN)
