"""A sweep small enough for the tests: LSTM and GRU on copy memory, 6 steps.

  python launch.py --config=tests/experiments/tiny_sweep.py --mode=sweep --workdir=/tmp/tiny
"""

import ml_collections

from seqjax import configs
from seqjax import models
from seqjax import parallel
from seqjax import sweep
from seqjax import tasks


def get_config(arg=None) -> ml_collections.ConfigDict:
  args = configs.parse_arg(arg, model="lstm", delay=4, fail=False, grid="models")
  config = ml_collections.ConfigDict()
  config.task = tasks.task_config("copy_memory", delay=args.delay, num_symbols=2,
                                  alphabet=4)
  config.model = models.model_config(args.model, width=8)
  config.train = configs.train_defaults()
  config.train.update(steps=6, batch_size=4, learning_rate=1e-2, warmup_steps=1,
                      log_every=3, eval_every=3, eval_batches=1,
                      checkpoint_every=3)
  config.mesh = parallel.mesh_defaults()
  if args.grid == "seeds":  # long enough to be killed while it trains
    # A checkpoint every 40 steps, not 20: each costs its 4 trials about 0.4 s
    # (this sweep: 17-19 s with 20, 11.7 s with 40, 10.2 s with 100).
    config.train.update(steps=400, checkpoint_every=40, eval_every=100,
                        log_every=50)
  if args.fail:  # a trial that crashes: a schedule the optimizer rejects
    config.train.schedule = "bogus"
  return config


SWEEP_AXIS = "arg.delay"


def get_sweep(arg=None):
  """grid=models: 8 trials in 4 groups; grid=seeds: 4 trials in one group."""
  if configs.parse_arg(arg, model=str, delay=int, fail=False,
                       grid="models").grid == "seeds":
    return sweep.product(sweep.values("arg.delay", [4]),
                         sweep.values("train.learning_rate", [0.01, 0.003]),
                         sweep.values("train.seed", [0, 1]))
  return sweep.product(sweep.values("arg.model", ["lstm", "gru"]),
                       sweep.values("arg.delay", [2, 4]),
                       sweep.values("train.learning_rate", [0.01, 0.001]))
