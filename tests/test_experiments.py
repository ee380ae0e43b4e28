"""Every config file in experiments/ loads and builds (task, model, optimizer,
mesh), in its default and its quick variant, without compiling anything."""

import glob
import os

import pytest

from seqjax import experiment
from seqjax import experiment_config
from seqjax import tasks
from seqjax.errors import ConfigError

import helpers  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = sorted(os.path.basename(p)[:-3]
                     for p in glob.glob(os.path.join(ROOT, "experiments", "*.py")))


def test_every_experiment_is_listed():
  assert len(EXPERIMENTS) >= 10 and "long_dependency" in EXPERIMENTS


@pytest.mark.parametrize("arg", [None, "quick"])
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_config_builds(name, arg):
  config = helpers.load_experiment(name).get_config(arg)
  assert sorted(config) == ["mesh", "model", "task", "train"]
  exp = experiment.build(config)
  assert exp.train.steps > exp.train.warmup_steps


def test_model_settings_apply_where_the_model_has_the_field():
  reverse = helpers.load_experiment("reverse")
  assert "num_layers" not in reverse.get_config(None).model      # rnn_encdec
  config = reverse.get_config("model=transformer_encdec,quick")
  assert config.model.num_layers == 1 and config.model.width == 32


def test_unknown_model_names_the_valid_ones():
  with pytest.raises(ConfigError, match="Unknown model.name 'lstmm'; valid: dvae, gru, lru, lstm"):
    experiment_config.build(tasks.task_config("adding"), "lstmm", False,
                            model_settings={}, train={})
