"""Your own text: byte-level (or character-level) language modelling of any UTF-8 file or folder.

  python launch.py --config=experiments/text.py:quick --workdir=runs/text_docs
  python launch.py --config=experiments/text.py:path=/data/enwik8,model=lstm --workdir=runs/enwik8
  python launch.py --config=experiments/text.py:path=/data/novels,pattern=*.txt,unit=char --workdir=runs/novels

Arguments: path (a file or folder; default: this repository's docs/, its Markdown files, a
small corpus that is always there), pattern (file names read from a folder), unit (byte |
char), length (the context L; 1024, or 128 when quick), model (a name in seqjax.models.MODELS),
quick. Splits are contiguous (90 / 5 / 5 %); the headline metric is bits per byte (chance 8).
"""

import os

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "docs")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, path="", pattern="", unit="byte", length=int,
                           model="lstm", quick=False)
  task = tasks.task_config(
      "text", path=args.path or DOCS,
      pattern=args.pattern or ("*" if args.path else "*.md"), unit=args.unit,
      length=args.length or (128 if args.quick else 1024))
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=256, num_layers=2, num_heads=4),
      quick_model=dict(width=64, num_layers=1),
      train=dict(steps=20000, batch_size=32, learning_rate=1e-3,
                 warmup_steps=500, eval_every=1000, checkpoint_every=1000,
                 eval_batches=20),
      quick_train=dict(steps=300, batch_size=16, learning_rate=3e-3,
                       warmup_steps=20, eval_every=150, checkpoint_every=150,
                       eval_batches=4))
