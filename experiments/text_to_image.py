"""Text to image (DALL-E, small): a decoder-only transformer draws scikit-learn's 8x8 digits from captions.

  python launch.py --config=experiments/text_to_image.py:quick --workdir=runs/t2i_quick
  python launch.py --workdir=runs/t2i_quick --mode=generate --prompt="a handwritten seven" --num_samples=10
  python launch.py --config=experiments/text_to_image.py --workdir=runs/t2i
  python launch.py --config=experiments/vqvae_digits.py:quick --workdir=runs/vqvae_quick
  python launch.py --config=experiments/text_to_image.py:quick,tokenizer_run=runs/vqvae_quick --workdir=runs/t2i_vq_quick

Arguments: grey_levels (G, grey levels of a pixel; 4), tokenizer_run (a vqvae_digits run: 16 learned
codes per image, one per 2x2 patch, instead of 64 pixel tokens), text_loss_weight (loss weight of
the caption tokens; 0, DALL-E used 1/8), quick (a run that trains on a 2-core CPU in a few minutes).
The sequence is [caption, 5 words padded] [<sep>] [image tokens]; the headline metric is the
validation cross-entropy of the image tokens. `--mode=generate` judges drawn images with a
classifier fitted on the real training images (caption accuracy, chance 0.1).
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, grey_levels=4, tokenizer_run="",
                           text_loss_weight=0.0, quick=False)
  task = tasks.task_config("text_to_image", grey_levels=args.grey_levels,
                           tokenizer_run=args.tokenizer_run,
                           text_loss_weight=args.text_loss_weight)
  return experiment_config.build(
      task, "transformer", args.quick,
      model_settings=dict(width=128, num_layers=4, num_heads=4, dropout=0.1,
                          positional="learned"),
      quick_model=dict(width=64, num_layers=2, dropout=0.0),
      train=dict(steps=10000, batch_size=64, learning_rate=1e-3,
                 warmup_steps=500, eval_every=500, checkpoint_every=500,
                 eval_batches=8, weight_decay=0.01),
      quick_train=dict(steps=1500, batch_size=32, learning_rate=3e-3,
                       warmup_steps=100, eval_every=500, checkpoint_every=500,
                       eval_batches=4, weight_decay=0.0))
