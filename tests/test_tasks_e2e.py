"""Every task's experiment config runs end to end (quick mode, a few steps) with a
recurrent model (lstm) and an attention model (transformer; vit on patches;
transformer_encdec and a stand-in encoder-decoder whose `generate` is an oracle,
for the seq2seq task)."""

import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from seqjax import experiment
from seqjax import metric_log
from seqjax import models
from seqjax import train

import helpers  # pylint: disable=g-bad-import-order

jax.config.update("jax_numpy_rank_promotion", "raise")
pytestmark = pytest.mark.slow  # a compiled run of every task's experiment

# Task overrides that keep the quick configs' shapes but shrink what only costs
# time here (ListOps generation, extrapolation lengths).
SHRINK = {
    "listops": dict(num_train=64, num_valid=16, num_test=16, max_length=40,
                    min_length=10),
    "induction_heads": dict(eval_lengths=(48,)),
    "selective_copy": dict(length=16),
    "associative_recall": dict(length=16),
}
EXTRA_SPLITS = {"flip_flop": ["dense", "sparse"], "induction_heads": ["len48"]}


def quick_config(name: str, arg: str = "quick"):
  module = helpers.load_experiment(name)
  config = module.get_config(arg)
  config.task.update(SHRINK.get(name, {}))
  config.model.width = 8
  config.train.update(steps=2, batch_size=4, warmup_steps=1, log_every=1,
                      eval_every=2, eval_batches=1, checkpoint_every=2)
  return config


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("SEQJAX_DATA", str(tmp_path / "data"))


PER_POSITION = ["adding", "selective_copy", "associative_recall", "induction_heads",
                "flip_flop", "listops", "sequential_digits", "copy_memory"]
# The transformer on every per-position task doubles this file's time (about 9 s
# of CPU per run), so it runs when SEQJAX_E2E_ALL=1; by default the attention
# family is covered by vit (dataset task, real-valued patches) and
# transformer_encdec (seq2seq, generation), beside the lstm on every task.
ALL = os.environ.get("SEQJAX_E2E_ALL") == "1"
RUNS = ([(name, "lstm", "") for name in PER_POSITION] +
        [pytest.param(name, "transformer", "", marks=pytest.mark.skipif(
            not ALL, reason="set SEQJAX_E2E_ALL=1")) for name in PER_POSITION] +
        [("sequential_digits", "vit", ",patches")])


@pytest.mark.parametrize("name,model,extra", RUNS)
def test_quick_config_runs_end_to_end(name, model, extra, tmp_path):
  config = quick_config(name, f"quick,model={model}{extra}")
  config.model.num_layers = 1
  assert config.model.name == model
  workdir = str(tmp_path / "run")
  summary = train.train_and_evaluate(config, workdir, progress=False)
  task = experiment.build(config).task
  assert summary["status"] == "completed" and summary["step"] == 2
  assert summary["metric"] == task.metric and summary["chance"] == task.chance
  assert task.metric in summary["test"] and task.metric in summary["final"]
  splits = {r["split"] for r in metric_log.read(os.path.join(workdir, "metrics.jsonl"))}
  extra = EXTRA_SPLITS.get(name, [])
  assert splits == {"train", "eval", "test"} | {
      f"{s}_{e}" for s in ("eval", "test") for e in extra}
  for e in extra:
    assert task.metric in summary[f"test_{e}"]
  stored = json.load(open(os.path.join(workdir, "summary.json")))
  assert stored["chance"] == task.chance


@dataclasses.dataclass(frozen=True)
class OracleEncDecConfig:
  """A stand-in seq2seq model: trainable teacher-forced logits, and a `generate`
  that reverses the source (so generation metrics must come out exactly 1)."""
  width: int = 8
  num_layers: int = 1

  def build(self, io):
    return OracleEncDec(io, self.width)


class OracleEncDec(nn.Module):
  io: object
  width: int

  @nn.compact
  def __call__(self, inputs_BxS, decoder_inputs_BxT, *, train=False, decode=False):
    del train, decode
    source_BxD = nn.Embed(self.io.input_vocab, self.width)(inputs_BxS).mean(1)
    target_BxTxD = nn.Embed(self.io.bos_id + 1, self.width)(decoder_inputs_BxT)
    return nn.Dense(self.io.output_size)(target_BxTxD + source_BxD[:, None, :])

  def generate(self, inputs_BxS, max_length, temperature=0.0, rng=None):
    del temperature, rng
    eos = jnp.full((inputs_BxS.shape[0], max_length - inputs_BxS.shape[1]),
                   self.io.eos_id, jnp.int32)
    return jnp.concatenate([inputs_BxS[:, ::-1], eos], axis=1)


def test_reverse_runs_end_to_end_and_scores_generated_outputs(tmp_path, monkeypatch):
  monkeypatch.setitem(models.MODELS, "oracle_encdec", OracleEncDecConfig)
  config = quick_config("reverse", "quick,model=oracle_encdec")
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), progress=False)
  assert summary["status"] == "completed" and summary["metric"] == "exact_match"
  for result in (summary["final"], summary["test"], summary["best"]):
    assert result["exact_match"] == 1.0 and result["generated_accuracy"] == 1.0
    assert 0.0 <= result["accuracy"] < 1.0     # teacher-forced, barely trained
  records = metric_log.read(os.path.join(tmp_path, "run", "metrics.jsonl"))
  train_record = next(r for r in records if r["split"] == "train")
  assert "exact_match" not in train_record


def test_reverse_runs_end_to_end_with_transformer_encdec(tmp_path):
  config = quick_config("reverse", "quick,model=transformer_encdec")
  config.model.num_layers = 1
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), progress=False)
  assert summary["status"] == "completed"
  for key in ("exact_match", "generated_accuracy", "accuracy", "loss"):
    assert 0.0 <= summary["test"][key] and key in summary["final"]
