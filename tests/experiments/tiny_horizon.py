"""A horizon search small enough for the tests: an LSTM on copy memory (6
steps, tiny_sweep's config), one probe (delay 2: max_length is the start), two
learning rates.

  python launch.py --config=tests/experiments/tiny_horizon.py --mode=sweep --workdir=/tmp/tiny_horizon
"""

import os

from seqjax import configs
from seqjax import sweep

_TINY = configs.load_module(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_sweep.py"))


def get_config(arg=None):
  return _TINY.get_config(arg)


def get_search(arg=None):
  del arg
  return dict(threshold=0.5, resolution=1.25, length_key="arg.delay",
              grid=sweep.values("train.learning_rate", [0.01, 0.003]),
              searches=[dict(overrides={"arg.model": "lstm"}, start=2,
                             max_length=2)])
