"""Issue 19, nothing silent: every wrong, missing or misleading number becomes an
error or is reported."""

import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as onp
import pytest

from seqjax import configs
from seqjax import experiment
from seqjax import experiment_config
from seqjax import metric_log
from seqjax import models
from seqjax import report
from seqjax import run_files
from seqjax import sweep
from seqjax import tasks
from seqjax.errors import ConfigError
from seqjax.tasks import base

import helpers  # pylint: disable=g-bad-import-order


def _strict_load(text: str):
  def refuse(token):
    raise AssertionError(f"non-standard JSON token {token}")
  return json.loads(text, parse_constant=refuse)


# --- 1. informed baselines beside chance ------------------------------------


def _batches(task, n=8, batch_size=256):
  return [jax.device_get(task.batch(jax.random.key(i), batch_size))
          for i in range(n)]


def test_describe_states_mode_chance_and_baselines():
  task = tasks.build(tasks.task_config("associative_recall", length=32,
                                       num_pairs=4, vocab=64))
  described = base.describe(task)
  assert described["metric"] == "accuracy" and described["mode"] == "max"
  assert described["chance"] == task.chance
  assert described["baselines"]["context_guess"]["value"] == 0.25
  assert set(described["baselines"]["context_guess"]) == {"value", "metric", "what"}
  assert base.describe(tasks.build(tasks.task_config("flip_flop")))["baselines"] == {}


def test_associative_recall_context_guess_by_monte_carlo():
  task = tasks.build(tasks.task_config("associative_recall", length=32,
                                       num_pairs=4, vocab=64))
  rng = onp.random.RandomState(0)
  hits, total = 0, 0
  for b in _batches(task):
    values = b["inputs"][:, 1:2 * task.num_pairs:2]   # the P values in context
    guess = values[onp.arange(len(values))[:, None],
                   rng.randint(0, task.num_pairs, b["targets"].shape)]
    scored = b["mask"] > 0
    hits += (guess == b["targets"])[scored].sum()
    total += scored.sum()
  baseline = task.baselines["context_guess"]["value"]
  assert abs(hits / total - baseline) < 4 * math.sqrt(0.25 * 0.75 / total)


@pytest.mark.parametrize("score", ["all", "recall"])
def test_copy_memory_memoryless_loss_by_monte_carlo(score):
  task = tasks.build(tasks.task_config("copy_memory", delay=6, num_symbols=3,
                                       alphabet=4, score=score))
  vocab, recall_start = task.alphabet + 2, task.delay + task.num_symbols
  # The memoryless strategy: the blank for sure before the recall, a uniform
  # guess among the symbols 1..alphabet at the recall positions.
  logits = onp.full((task.length, vocab), -1e9, onp.float32)
  logits[:recall_start, 0] = 0.0
  logits[recall_start:, 1:task.alphabet + 1] = 0.0
  losses = [float(base.cross_entropy(
      jnp.broadcast_to(logits, (*b["targets"].shape, vocab)), b["targets"],
      b["mask"])) for b in _batches(task, n=2, batch_size=64)]
  baseline = task.baselines["memoryless"]
  assert baseline["metric"] == "loss"
  assert onp.mean(losses) == pytest.approx(baseline["value"], rel=1e-5)
  if score == "all":  # Arjovsky et al. 2016: 10 log 8 / (T + 20) at k=10, n=8
    paper = tasks.build(tasks.task_config("copy_memory", delay=100))
    assert paper.baselines["memoryless"]["value"] == pytest.approx(
        10 * math.log(8) / 120)


def test_adding_predict_one_by_monte_carlo():
  task = tasks.build(tasks.task_config("adding", length=20))
  sums = onp.concatenate([b["targets"][:, -1, 0] for b in _batches(task)])
  baseline = task.baselines["predict_one"]
  assert baseline["metric"] == "mse" and baseline["value"] == pytest.approx(0.167, abs=1e-3)
  sigma = onp.std((sums - 1.0) ** 2) / math.sqrt(len(sums))
  assert onp.mean((sums - 1.0) ** 2) == pytest.approx(baseline["value"], abs=4 * sigma)


# --- 2. learned positions past the table ------------------------------------


def test_learned_positions_past_the_table_are_refused():
  task = tasks.build(tasks.task_config("induction_heads", length=16, vocab=5,
                                       eval_lengths=(32, 64)))
  learned = models.model_config("transformer", width=8, num_heads=2,
                                num_layers=1, positional="learned")
  with pytest.raises(ConfigError, match=r"16 positions.*\[32, 64\]"):
    models.build(learned, task.io)
  learned.positional = "sinusoidal"
  models.build(learned, task.io)
  fits = tasks.build(tasks.task_config("induction_heads", length=16, vocab=5,
                                       eval_lengths=(8,)))
  learned.positional = "learned"
  models.build(learned, fits.io)


# --- 3. strict JSON, 4. permissions -----------------------------------------


def test_every_json_file_is_strict(tmp_path):
  path = str(tmp_path / "summary.json")
  run_files.write_json(path, {"final": {"loss": float("nan"), "accuracy": 0.5},
                                "best": float("inf")})
  stored = _strict_load(open(path).read())
  assert stored["final"] == {"loss": None, "accuracy": 0.5,
                             "nonfinite": {"loss": "nan"}}
  assert stored["best"] is None and stored["nonfinite"] == {"best": "inf"}

  log = metric_log.MetricLog(str(tmp_path), 0, 10, progress=False)
  log.write(1, "train", {"loss": 1.0, "grad_norm": float("inf")})
  log.close()
  line, = open(tmp_path / "metrics.jsonl").read().splitlines()
  assert _strict_load(line)["nonfinite"] == {"grad_norm": "inf"}

  sweep_dir = str(tmp_path / "sweep")
  helpers.fake_trial(sweep_dir, "t", {"task.delay": 2}, {
      "metric": "accuracy", "final": {"accuracy": float("nan")}, "test": {}})
  report.write(sweep_dir)
  line, = open(tmp_path / "sweep" / "results.jsonl").read().splitlines()
  assert _strict_load(line)["final"]["nonfinite"] == {"accuracy": "nan"}


def test_json_files_follow_the_umask(tmp_path):
  old = os.umask(0o022)
  try:
    run_files.write_json(str(tmp_path / "config.json"), {"a": 1})
  finally:
    os.umask(old)
  assert os.stat(tmp_path / "config.json").st_mode & 0o777 == 0o644


# --- 5f, 5g, 6. config input -------------------------------------------------


def test_workdir_name_longer_than_the_file_system_allows(tmp_path):
  limit = os.pathconf(str(tmp_path), "PC_NAME_MAX")
  with pytest.raises(ConfigError, match=f"at most {limit} bytes"):
    run_files.check_writable(str(tmp_path / ("x" * (limit + 1)) / "run"))
  run_files.check_writable(str(tmp_path / ("x" * limit)))


@pytest.mark.parametrize("key,value", [("learning_rate", float("inf")),
                                       ("learning_rate", float("nan")),
                                       ("weight_decay", float("nan")),
                                       ("grad_clip", float("inf"))])
def test_non_finite_train_values_are_refused(key, value):
  cfg = configs.train_defaults()
  cfg[key] = value
  with pytest.raises(ConfigError, match=f"train.{key}=.*not a finite"):
    configs.train_config(cfg)


def test_non_finite_task_and_model_values_are_refused():
  with pytest.raises(ConfigError, match="task.power_a=inf"):
    tasks.build(tasks.task_config("associative_recall", power_a=float("inf")))
  task = tasks.build(tasks.task_config("copy_memory", delay=4))
  with pytest.raises(ConfigError, match="model.dropout=nan"):
    models.build(models.model_config("transformer", dropout=float("nan")), task.io)


def test_model_setting_that_no_model_has_is_refused():
  task = tasks.task_config("copy_memory", delay=4)
  kwargs = dict(train={}, quick_model={})
  # `num_heads` is a transformer field: an LSTM experiment may carry it.
  config = experiment_config.build(task, "lstm", False,
                                   model_settings=dict(width=8, num_heads=2), **kwargs)
  assert "num_heads" not in config.model
  with pytest.raises(ConfigError, match="'widht'.*valid keys:.*width"):
    experiment_config.build(task, "lstm", False,
                            model_settings=dict(widht=8), **kwargs)


# --- 10. long trial names ---------------------------------------------------


def test_long_trial_names_are_shortened_stably(tmp_path):
  short = {"arg.model": "lstm", "task.delay": 20}
  assert sweep.trial_name(short) == "model=lstm,task.delay=20"
  long_a = {"arg.model": "lstm", "arg.note": "a" * 300}
  long_b = {"arg.model": "lstm", "arg.note": "a" * 299 + "b"}
  name = sweep.trial_name(long_a)
  assert len(name.encode()) <= sweep.MAX_NAME_BYTES
  assert name.startswith("model=lstm,note=aaa")
  assert name == sweep.trial_name(dict(long_a)) != sweep.trial_name(long_b)
  os.makedirs(tmp_path / name)


# --- 9. report robustness ----------------------------------------------------


def _fake(workdir, name, overrides, test, task="copy_memory", model="lstm",
          summary=None, axis=None):
  helpers.fake_trial(workdir, name, overrides, dict(
      dict(metric="accuracy", chance=0.25, final={"accuracy": test},
           test={"accuracy": test}, steps_per_s=10.0, peak_memory_mb=1.0,
           num_params=5), **(summary or {})), task=task, model=model, axis=axis)


def test_report_without_a_length_axis_writes_the_table(tmp_path):
  workdir = str(tmp_path)
  for i, model in enumerate(["lstm", "gru"]):
    for lr in (0.1, 0.01):
      _fake(workdir, f"{model}{lr}", {"arg.model": model, "train.learning_rate": lr},
            0.5 + 0.1 * i, model=model)
  data = report.write(workdir)["copy_memory"]
  assert [p["model"] for p in data["points"]] == ["gru", "lstm"]
  text = open(tmp_path / "report.md").read()
  assert "No line plot: the experiment names no sweep axis" in text
  assert "| gru | - |" in text


def test_report_skips_string_lengths_in_plots_and_says_so(tmp_path):
  workdir = str(tmp_path)
  for i, delay in enumerate([2, 4, "auto"]):
    _fake(workdir, f"d{i}", {"arg.delay": delay}, 0.5, axis="arg.delay")
  report.write(workdir)
  text = open(tmp_path / "report.md").read()
  assert "Not plotted (length not a number): auto" in text
  assert "| lstm | auto |" in text and "| lstm | 2 |" in text
  assert os.path.exists(tmp_path / "copy_memory_accuracy.png")


def test_report_reads_mode_and_baselines_from_results(tmp_path):
  workdir = str(tmp_path)
  # A "min" metric whose name does not say so: the report must not guess.
  for lr, valid in ((0.1, 0.2), (0.01, 0.9)):
    _fake(workdir, f"lr{lr}", {"task.delay": 4, "train.learning_rate": lr}, valid,
          axis="task.delay",
          summary=dict(metric="accuracy", mode="min", baselines={
              "memoryless": dict(value=0.3, metric="accuracy", what="w")}))
  data = report.write(workdir)["copy_memory"]
  assert data["mode"] == "min" and data["points"][0]["learning_rate"] == 0.1
  assert data["baselines"]["memoryless"]["value"] == 0.3
  assert "baseline memoryless: accuracy 0.3 (w)" in open(tmp_path / "report.md").read()
  _strict_load(open(tmp_path / "report.json").read())


def test_report_never_averages_trials_of_different_settings(tmp_path):
  """A sweep over length x width: the width is part of the point, not a seed."""
  workdir = str(tmp_path)
  for length in (4, 8):
    for width, acc in ((16, 0.3), (64, 0.9)):
      for seed in (0, 1):
        _fake(workdir, f"l{length}w{width}s{seed}",
              {"arg.width": width, "arg.length": length, "train.seed": seed},
              acc + 0.01 * seed, axis="arg.length")
  data = report.write(workdir)["copy_memory"]
  assert data["length_key"] == "arg.length"
  got = {(p["length"], p["setting"]["arg.width"]): (p["seeds"], p["test_mean"])
         for p in data["points"]}
  assert got == pytest.approx({(4, 16): (2, 0.305), (4, 64): (2, 0.905),
                               (8, 16): (2, 0.305), (8, 64): (2, 0.905)})
  text = open(tmp_path / "report.md").read()
  assert "| lstm (width=16) | 4 |" in text and "| lstm (width=64) | 8 |" in text


def test_report_says_when_learning_rates_tie_on_validation(tmp_path):
  workdir = str(tmp_path)
  for lr in (0.003, 0.001):  # written in either order: the smallest is chosen
    _fake(workdir, f"lr{lr}", {"train.learning_rate": lr}, 1.0)
  point = report.write(workdir)["copy_memory"]["points"][0]
  assert point["learning_rate"] == 0.001
  assert point["tied_learning_rates"] == [0.001, 0.003]
  assert "0.001 (tied on validation with 0.003; the smallest chosen)" in open(
      tmp_path / "report.md").read()


def test_report_labels_leave_out_an_override_constant_within_a_task(tmp_path):
  """A sweep over tasks sets arg.task: within a task it is one value, so the
  label is the model, not `lstm (task=copy_memory)`; a varying width stays."""
  workdir = str(tmp_path)
  for task in ("copy_memory", "adding"):
    for width in (16, 64):
      _fake(workdir, f"{task}{width}", {"arg.task": task, "arg.length": 4,
                                        "arg.width": width}, 0.5, task=task,
            axis="arg.length")
  data = report.aggregate(workdir)
  assert sorted(p["label"] for p in data["copy_memory"]["points"]) == [
      "lstm (width=16)", "lstm (width=64)"]
  assert len(data["adding"]["points"]) == 2


def test_report_takes_the_mode_each_run_recorded(tmp_path):
  workdir = str(tmp_path)
  for lr, mse in ((0.1, 0.2), (0.01, 0.05)):
    _fake(workdir, f"lr{lr}", {"task.length": 8, "train.learning_rate": lr}, 0,
          task="adding", summary=dict(metric="mse", mode="min", final={"mse": mse},
                                      test={"mse": mse}))
  data = report.aggregate(workdir)["adding"]
  assert data["mode"] == "min" and data["points"][0]["learning_rate"] == 0.01


def test_report_gives_each_extra_test_set_for_the_chosen_learning_rate(tmp_path):
  """Induction heads' test_len<N> sets: kept in results.jsonl, reported for the
  learning rate chosen on validation, in natural order; a missing set is the
  worst score (scores.worst), not left out of the mean."""
  workdir = str(tmp_path)
  for lr, valid in ((0.1, 0.2), (0.01, 0.9)):
    for seed in (0, 1):
      extra = {"test_len1024": {"accuracy": lr + seed},
               "test_len128": {"accuracy": 10 * lr + seed}}
      if lr == 0.01 and seed == 1:
        del extra["test_len1024"]
      _fake(workdir, f"lr{lr}s{seed}", {"train.learning_rate": lr, "train.seed": seed},
            valid, summary=dict(final={"accuracy": valid}, **extra))
  rows = {r["trial"]: r for r in report.results(workdir)}
  assert rows["lr0.1s0"]["extra_tests"]["test_len128"] == {"accuracy": 1.0}
  point = report.write(workdir)["copy_memory"]["points"][0]
  assert point["learning_rate"] == 0.01 and point["tied_learning_rates"] == []
  assert list(point["extra_tests"]) == ["test_len128", "test_len1024"]
  assert point["extra_tests"]["test_len128"] == pytest.approx(
      dict(mean=0.6, min=0.1, max=1.1))
  assert point["extra_tests"]["test_len1024"] == dict(mean=-math.inf, min=-math.inf,
                                                      max=0.01)
  text = open(tmp_path / "report.md").read()
  assert "| model | length | test (training length) | test_len128 | test_len1024 |" in text
  assert (tmp_path / "copy_memory_extra_tests.png").exists()


# --- 7. checkpoint faults ----------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny finished run with checkpoints at steps 4 and 6."""
  from seqjax import train  # pylint: disable=import-outside-toplevel
  config = helpers.tiny_copy_memory_config()
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  train.train_and_evaluate(config, workdir, progress=False)
  return config, workdir


def _copy(trained, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path / "run")
  shutil.copytree(trained[1], workdir)
  return workdir


def _restore_latest(config, workdir):
  from seqjax import checkpoints  # pylint: disable=import-outside-toplevel
  exp = experiment.build(config)
  mngr = checkpoints.manager(workdir, 2, "accuracy", "max")
  try:
    return checkpoints.restore_latest(mngr, experiment.abstract_state(exp))[1]
  finally:
    mngr.close()


def test_a_checkpoint_without_its_item_dir_is_the_only_one_set_aside(
    trained, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  workdir = _copy(trained, tmp_path)
  shutil.rmtree(os.path.join(workdir, "checkpoints", "6", "default"))
  assert _restore_latest(trained[0], workdir) == 4
  assert os.listdir(os.path.join(workdir, "corrupt_checkpoints")) == ["6"]
  assert os.listdir(os.path.join(workdir, "checkpoints")) == ["4"]


def test_a_checkpoint_of_other_shapes_stops_the_run_and_says_what_differs(
    trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  config = ml_collections.ConfigDict(trained[0].to_dict())
  config.model.width = 16  # the code now builds another state
  with pytest.raises(ConfigError, match=r"checkpoints/6 does not match.*"
                     r"params/backbone/layer_0/bias: stored \(\(32,\), 'float32'\), "
                     r"expected \(\(64,\), 'float32'\)"):
    _restore_latest(config, workdir)
  assert not os.path.exists(os.path.join(workdir, "corrupt_checkpoints"))
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "6"]


def test_loading_a_damaged_checkpoint_is_a_config_error(trained, tmp_path):
  from seqjax import checkpoints  # pylint: disable=import-outside-toplevel
  workdir = _copy(trained, tmp_path)
  for root, _, files in os.walk(os.path.join(workdir, "checkpoints", "6")):
    for name in files:
      if "ocdbt.process" in root:
        open(os.path.join(root, name), "w").close()  # cut to nothing
  with pytest.raises(ConfigError, match=r"checkpoints/6 cannot be read: its "
                     r"array .* Use another \(4: --step\)"):
    experiment.load(workdir, 6)
  assert experiment.load(workdir, 4).step == 4


# --- 5d. --config.KEY=VALUE in --mode=sweep ----------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SWEEP = os.path.join(ROOT, "tests", "experiments", "tiny_sweep.py")


def test_command_line_overrides_apply_to_every_trial_after_its_own():
  plain = sweep.expand(TINY_SWEEP, None)
  trials = sweep.expand(TINY_SWEEP, None, {"model.width": 4, "task.delay": 9})
  assert [t.name for t in trials] == [t.name for t in plain]  # names unchanged
  for own, merged in zip(plain, trials):
    assert merged.overrides == {**own.overrides, "model.width": 4, "task.delay": 9}
    config = merged.config
    assert (config.model.width, config.task.delay) == (4, 9)  # after arg.delay
  with pytest.raises(ConfigError, match="names no config key"):
    sweep.expand(TINY_SWEEP, None, {"model.widht": 4})


@pytest.mark.slow
def test_launch_sweep_applies_command_line_overrides(tmp_path):
  import subprocess, sys  # pylint: disable=import-outside-toplevel,multiple-imports
  workdir = str(tmp_path / "sweep")
  result = subprocess.run(
      [sys.executable, "launch.py", f"--config={TINY_SWEEP}", "--mode=sweep",
       f"--workdir={workdir}", "--sweep_shard=0/4", "--config.model.width=4"],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = report.results(workdir)
  assert len(lines) == 2  # one group of 8 trials' 4 (two learning rates)
  for line in lines:
    assert line["overrides"]["model.width"] == 4
    stored = run_files.read_json(os.path.join(workdir, line["trial"],
                                                "config.json"))
    assert stored["model"]["width"] == 4


# --- 11. evaluation size and exact passes over a dataset's split -------------


def test_a_dataset_split_is_evaluated_exactly_once_per_example():
  from seqjax import stepping  # pylint: disable=import-outside-toplevel
  config = ml_collections.ConfigDict()
  config.task = tasks.task_config("sequential_digits", layout="patches",
                                  valid_size=10, test_size=20)
  config.model = models.model_config("lstm", width=8)
  config.train = configs.train_defaults()
  config.train.update(batch_size=4, eval_batches=50)
  exp = experiment.build(config)
  params = experiment.init_state(exp).params
  metrics, examples = stepping.evaluate_split(exp, params, "eval")
  assert examples == 10  # 4 + 4 + 2, not 50 batches drawn with replacement
  data = exp.task.data("eval")
  logits = exp.model.apply({"params": params}, data["inputs"])[:, -1]
  labels = onp.asarray(data["labels"])
  assert metrics["accuracy"] == pytest.approx(
      float(onp.mean(onp.argmax(logits, -1) == labels)))
  nll = -jax.nn.log_softmax(logits)[onp.arange(10), labels]
  assert metrics["loss"] == pytest.approx(float(jnp.mean(nll)), rel=1e-5)
  assert stepping.evaluate_split(exp, params, "eval", num_batches=2)[1] == 8
  assert stepping.evaluate_split(exp, params, "test")[1] == 20


def test_eval_batches_sets_the_size_of_a_checkpoint_evaluation(trained):
  from seqjax import train  # pylint: disable=import-outside-toplevel
  config, workdir = trained
  before = run_files.read_json(os.path.join(workdir, "config.json"))
  result = train.evaluate_checkpoint(workdir, 6, eval_batches=3)
  assert result["examples"]["eval"] == result["examples"]["test"] == 3 * 4
  assert run_files.read_json(os.path.join(workdir, "config.json")) == before
  assert train.evaluate_checkpoint(workdir, 6)["examples"]["eval"] == 2 * 4
  with pytest.raises(ConfigError, match="--eval_batches=0 must be positive"):
    train.evaluate_checkpoint(workdir, 6, eval_batches=0)
