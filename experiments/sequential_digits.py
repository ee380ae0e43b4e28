"""Sequential digits: scikit-learn's 8x8 digits classified pixel by pixel (or as 4x4 patches).

  python launch.py --config=experiments/sequential_digits.py:quick --workdir=runs/sdigits
  python launch.py --config=experiments/sequential_digits.py:model=lstm,permute --workdir=runs/psdigits
  python launch.py --config=experiments/sequential_digits.py:model=vit,patches --workdir=runs/digits_vit

Arguments: model (a name in seqjax.models.MODELS), permute (a fixed random pixel order), patches
(inputs [4, 16]: the four 4x4 patches, for the ViT), quick (a run that finishes on a laptop CPU in
well under a minute). Fixed split: 1,257 training, 180 validation, 360 test images; evaluation
samples 8 x 64 validation (or test) images with replacement.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", permute=False, patches=False,
                           quick=False)
  task = tasks.task_config(
      "sequential_digits", permute=args.permute,
      layout="patches" if args.patches else "pixels")
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=128, num_layers=1), quick_model=dict(width=32),
      train=dict(steps=5000, batch_size=64, learning_rate=1e-3,
                 warmup_steps=200, eval_every=250, checkpoint_every=250,
                 eval_batches=8),
      quick_train=dict(steps=300, batch_size=32, learning_rate=1e-2,
                       warmup_steps=20, eval_every=150, checkpoint_every=150,
                       eval_batches=4))
