"""ListOps (LRA): the value of a nested MIN / MAX / MED / SM expression over digits.

  python launch.py --config=experiments/listops.py:quick --workdir=runs/listops
  python launch.py --config=experiments/listops.py:model=lstm --workdir=runs/listops_lra
  python launch.py --config=experiments/listops.py:model=lstm,tsv_dir=/data/lra_release/listops-1000 \
      --workdir=runs/listops_tsv

Arguments: model (a name in seqjax.models.MODELS), max_length (L; 2000 as in LRA, or 100 when
quick), min_length (500, or 20 when quick), tsv_dir (read the official basic_{train,val,test}.tsv
there instead of generating), quick (a run that finishes on a laptop CPU in well under a minute:
2,000 / 200 / 200 expressions). The generated data is cached under $SEQJAX_DATA/listops (default
~/.cache/seqjax); the full LRA-size set (96,000 / 2,000 / 2,000) is generated once on first use.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", max_length=int, min_length=int,
                           tsv_dir="", quick=False)
  task = tasks.task_config(
      "listops", tsv_dir=args.tsv_dir,
      max_length=args.max_length or (100 if args.quick else 2000),
      min_length=args.min_length if args.min_length is not None else (
          20 if args.quick else 500))
  if args.quick:
    task.update(num_train=2000, num_valid=200, num_test=200)
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=128, num_layers=2),
      quick_model=dict(width=32, num_layers=1),
      train=dict(steps=20000, batch_size=32, learning_rate=1e-3,
                 warmup_steps=1000, eval_every=1000, checkpoint_every=1000,
                 eval_batches=2000 // 32),
      quick_train=dict(steps=300, batch_size=32, learning_rate=3e-3,
                       warmup_steps=20, eval_every=150, checkpoint_every=150,
                       eval_batches=4))
