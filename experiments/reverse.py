"""Reverse: output the source sequence reversed (sequence to sequence).

  python launch.py --config=experiments/reverse.py:quick --workdir=runs/reverse
  python launch.py --config=experiments/reverse.py:model=transformer_encdec,length=128 --workdir=runs/reverse128

Arguments: model (a seq2seq model in seqjax.models.MODELS: rnn_encdec, the default, or
transformer_encdec; per-position models such as lstm do not read a separate source), length (S; 64,
or 8 when quick), quick (a run that finishes on a laptop CPU in well under a minute). Evaluation
decodes greedily and reports exact_match (the headline) and generated_accuracy.
"""

import ml_collections

from seqjax import configs
from seqjax import experiment_config
from seqjax import tasks


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="rnn_encdec", length=int, quick=False)
  task = tasks.task_config(
      "reverse", length=args.length or (8 if args.quick else 64))
  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=128, num_layers=1), quick_model=dict(width=32),
      train=dict(experiment_config.SYNTHETIC_TRAIN, steps=10000),
      quick_train=experiment_config.QUICK_TRAIN)
