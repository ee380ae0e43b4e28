"""The image tokenizer of text_to_image: a dVAE with one discrete code per 2x2 patch of the 8x8 digits.

  python launch.py --config=experiments/vqvae_digits.py:quick --workdir=runs/vqvae_quick
  python launch.py --config=experiments/text_to_image.py:quick,tokenizer_run=runs/vqvae_quick --workdir=runs/t2i_vq_quick

Arguments: grey_levels (G, as in text_to_image; 4), codebook_size (K, codes, the image-token
vocabulary of text_to_image; 32), quick (a run of about a minute on a 2-core CPU). Headline: the
validation pixel accuracy of the reconstruction (`image_exact`: images reconstructed without error).
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, grey_levels=4, codebook_size=32, quick=False)
  task = tasks.task_config("vqvae_digits", grey_levels=args.grey_levels)
  return experiment_config.build(
      task, "dvae", args.quick,
      model_settings=dict(codebook_size=args.codebook_size),
      train=dict(steps=5000, batch_size=64, learning_rate=3e-3,
                 warmup_steps=200, eval_every=500, checkpoint_every=500,
                 eval_batches=8),
      quick_train=dict(steps=1000, batch_size=32, warmup_steps=50,
                       eval_every=250, checkpoint_every=250, eval_batches=4))
