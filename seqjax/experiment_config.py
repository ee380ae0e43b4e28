"""The shared shape of the config files in experiments/.

An experiment config has four sections: `task`, `model`, `train` and `mesh`.
`build` assembles them from a task section, a model name with the experiment's
model settings, and the experiment's training settings, each with its `quick`
variant (a run that finishes on a laptop CPU):

  return experiment_config.build(
      task, args.model, args.quick,
      model_settings=dict(width=128, num_layers=2), quick_model=dict(width=32),
      train=dict(steps=20000, ...), quick_train=dict(steps=400, ...))

The experiment's model settings are experiment-wide defaults, so each applies
to the models that have that field: `num_layers` sizes an LSTM and is not
given to `rnn_encdec`, which has no such field. A setting that no model has is
a typo and is refused. What a user overrides on the command line
(`--config.model.x=...`) stays strict: an unknown key is an error.
"""

import ml_collections

from seqjax import configs
from seqjax import models
from seqjax import parallel
from seqjax.errors import ConfigError

# The training settings shared by the small synthetic-task experiments (each
# gives its own `steps`), and their quick budget.
SYNTHETIC_TRAIN = dict(batch_size=64, learning_rate=1e-3, warmup_steps=500,
                       eval_every=1000, checkpoint_every=1000)
QUICK_TRAIN = dict(steps=400, batch_size=32, learning_rate=1e-2, warmup_steps=20,
                   eval_every=200, checkpoint_every=200)


def build(task: ml_collections.ConfigDict, model: str, quick: bool, *,
          model_settings: dict, train: dict, quick_model: dict | None = None,
          quick_train: dict | None = None) -> ml_collections.ConfigDict:
  """The experiment config: `task` as given; `model`'s defaults updated by the
  `model_settings` it has (then `quick_model` when quick); the train defaults
  updated by `train` (then `quick_train` when quick); the mesh defaults."""
  defaults = models.model_config(model)  # refuses an unknown name
  settings = {**model_settings, **(quick_model or {} if quick else {})}
  _check_model_keys(settings)
  config = ml_collections.ConfigDict()
  config.task = task
  config.model = models.model_config(
      model, **{k: v for k, v in settings.items() if k in defaults})
  config.train = configs.train_defaults()
  config.train.update(**train)
  if quick:
    config.train.update(**(quick_train or {}))
  config.mesh = parallel.mesh_defaults()
  return config


def _check_model_keys(settings: dict) -> None:
  """Refuses a model setting that no model in `models.MODELS` has."""
  known = set().union(*(models.model_config(name).keys() for name in models.MODELS))
  unknown = sorted(set(settings) - known)
  if unknown:
    raise ConfigError(
        f"Model settings {unknown} name no field of any model; valid keys: "
        f"{', '.join(sorted(known - {'name'}))}.")
