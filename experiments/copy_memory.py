"""Copy memory: remember k symbols across a delay of T blanks.

  python launch.py --config=experiments/copy_memory.py:quick --workdir=runs/copy
  python launch.py --config=experiments/copy_memory.py:model=lstm,delay=200 --workdir=runs/copy200

Arguments: model (a name in seqjax.models.MODELS), delay (T; 100, or 10 when quick), quick (a run that
finishes on a laptop CPU in well under a minute).
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", delay=int, quick=False)
  delay = args.delay or (10 if args.quick else 100)
  task = tasks.task_config("copy_memory", delay=delay)
  if args.quick:
    task.num_symbols = 5
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=128), quick_model=dict(width=64),
      train=dict(steps=4000, batch_size=64, learning_rate=3e-3,
                 warmup_steps=200, eval_every=500, checkpoint_every=500),
      quick_train=dict(steps=2000, batch_size=32, learning_rate=1e-2,
                       warmup_steps=50, log_every=50, eval_every=500,
                       checkpoint_every=500))
