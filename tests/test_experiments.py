"""Every config file in experiments/ loads and builds (task, model, optimizer,
mesh), in its default and its quick variant, without compiling anything."""

import glob
import importlib.util
import os

import pytest

from seqjax import experiment_config
from seqjax import tasks
from seqjax import train
from seqjax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = sorted(os.path.basename(p)[:-3]
                     for p in glob.glob(os.path.join(ROOT, "experiments", "*.py")))


def load(name):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(ROOT, "experiments", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_experiment_is_listed():
  assert len(EXPERIMENTS) >= 10 and "long_dependency" in EXPERIMENTS


@pytest.mark.parametrize("arg", [None, "quick"])
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_config_builds(name, arg):
  config = load(name).get_config(arg)
  assert sorted(config) == ["mesh", "model", "task", "train"]
  exp = train.build(config)
  assert exp.train.steps > exp.train.warmup_steps


def test_model_settings_apply_where_the_model_has_the_field():
  reverse = load("reverse")
  assert "num_layers" not in reverse.get_config(None).model      # rnn_encdec
  config = reverse.get_config("model=transformer_encdec,quick")
  assert config.model.num_layers == 1 and config.model.width == 32


def test_unknown_model_names_the_valid_ones():
  with pytest.raises(ConfigError, match="Unknown model.name 'lstmm'; valid: dvae, gru, lru, lstm"):
    experiment_config.build(tasks.task_config("adding"), "lstmm", False,
                            model_settings={}, train={})
