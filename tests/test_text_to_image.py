"""text_to_image: tokenizers, the shared sampler (cache equals no cache), the
independent classifier, and --mode=generate as a user runs it."""

import glob
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as onp
import pytest

from seqjax import configs
from seqjax import digit_eval
from seqjax import dvae_codec
from seqjax import experiment
from seqjax import generation
from seqjax import models
from seqjax import sampling
from seqjax import tasks
from seqjax import train
from seqjax.errors import ConfigError
from seqjax.tasks import sequential_digits
from seqjax.tasks import text_to_image as t2i

import helpers  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make(**overrides):
  return tasks.build(tasks.task_config("text_to_image", **overrides))


# --- tokenizers --------------------------------------------------------------


def test_captions_round_trip_and_name_their_digit():
  assert len(set(t2i.VOCAB)) == len(t2i.VOCAB)
  for digit in range(10):
    for caption in t2i.captions(digit):
      ids = t2i.encode_caption(caption)
      assert ids.shape == (t2i.CAPTION_LENGTH,)
      assert t2i.decode_caption(ids) == caption
      assert t2i.caption_digit(caption) == digit
  assert t2i.decode_caption(t2i.encode_caption("The Digit  7")) == "the digit 7"


def test_vocabulary_is_stored_in_the_config_and_checked():
  config = tasks.task_config("text_to_image")
  assert tuple(config.vocabulary) == t2i.VOCAB
  stored = ml_collections.ConfigDict(json.loads(config.to_json()))
  assert tasks.build(stored).vocabulary == t2i.VOCAB  # a list in JSON
  with pytest.raises(ConfigError, match="not this code's caption vocabulary"):
    make(vocabulary=t2i.VOCAB[:-1])


def test_unknown_words_are_named():
  with pytest.raises(ConfigError, match="'purple', 'elephant'"):
    t2i.encode_caption("a purple elephant")
  with pytest.raises(ConfigError, match="1 to 5"):
    t2i.encode_caption("a picture of a handwritten seven")


@pytest.mark.parametrize("levels", [2, 4, 17])
def test_quantised_images_round_trip(levels):
  task = make(grey_levels=levels)
  tokens = onp.random.RandomState(0).randint(0, levels, (5, 64))
  onp.testing.assert_array_equal(task.image_tokens(task.token_images(tokens)),
                                 tokens)
  images, _ = task.images("train")  # real images, quantised
  assert set(onp.unique(task.image_tokens(images))) <= set(range(levels))
  onp.testing.assert_array_equal(task.token_images(task.image_tokens(images)),
                                 images)
  if levels == 17:  # every level of the data kept: the original images
    raw = sequential_digits.load_splits(0, 180, 360)["train"][0]
    onp.testing.assert_allclose(images, raw, atol=1e-6)


def test_batch_is_caption_sep_image_with_weighted_mask():
  task = make(text_loss_weight=0.125)
  data = task.data("train")
  batch = jax.device_get(task.sample(data, jax.random.key(0), 16))
  c = t2i.CAPTION_LENGTH
  assert batch["inputs"].shape == (16, task.io.length) == (16, c + 64)
  onp.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
  assert (batch["inputs"][:, c] == t2i.WORD_ID[t2i.SEP]).all()
  image_tokens = batch["targets"][:, c:] - task.image_offset
  train_tokens = onp.asarray(data["image_tokens"])
  train_labels = onp.asarray(data["labels"])
  for row in range(16):
    caption = t2i.decode_caption(batch["inputs"][row, :c])
    match = (train_tokens == image_tokens[row]).all(axis=1)
    assert match.any()  # a real training image
    assert t2i.caption_digit(caption) in set(train_labels[match])
    words = len(caption.split())
    expected = [0.125] * (words - 1) + [0.0] * (c - words) + [0.125] + [1.0] * 64
    onp.testing.assert_allclose(batch["mask"][row], expected)


# --- the learned tokenizer (vqvae_digits, dvae) -------------------------------


@pytest.fixture(scope="module")
def tokenizer_run(tmp_path_factory):
  config = ml_collections.ConfigDict()
  config.task = tasks.task_config("vqvae_digits", grey_levels=3)
  config.model = models.model_config("dvae", codebook_size=8, hidden=16)
  config.train = configs.train_defaults()
  config.train.update(steps=30, batch_size=16, learning_rate=1e-2, warmup_steps=1,
                      eval_every=30, checkpoint_every=30, eval_batches=1)
  workdir = str(tmp_path_factory.mktemp("vq") / "run")
  train.train_and_evaluate(config, workdir, progress=False)
  return workdir


@pytest.mark.slow  # uses a trained tokenizer run
def test_vq_codes_decode_to_the_quantised_image_the_model_reconstructs(
    tokenizer_run):
  task = make(grey_levels=3, tokenizer_run=tokenizer_run)
  assert task.image_length == 16 and task.image_vocab == 8
  assert task.io.length == t2i.CAPTION_LENGTH + 16
  images, _ = task.images("eval")
  codes = task.image_tokens(images)
  assert codes.shape == (len(images), 16) and 0 <= codes.min() and codes.max() < 8
  decoded = task.token_images(codes)
  assert set(onp.unique(decoded * 2)) <= {0.0, 1.0, 2.0}  # on the 3 levels
  onp.testing.assert_array_equal(task.image_tokens(decoded).shape, codes.shape)
  # The task's tokenizer is exactly the trained model's reconstruction.
  restored = experiment.load(tokenizer_run)
  patches = digit_eval_patches(images, 3)
  logits = restored.model.apply({"params": restored.params}, patches)
  model_images = dvae_codec.unpatch(
      onp.asarray(jnp.argmax(logits, -1)).reshape(-1, 16, 4)) / 2
  onp.testing.assert_array_equal(decoded, model_images.astype(onp.float32))
  batch = task.batch(jax.random.key(0), 4)
  assert batch["inputs"].shape == (4, t2i.CAPTION_LENGTH + 16)
  assert int(batch["targets"][:, -16:].min()) >= task.image_offset


def digit_eval_patches(images, levels):
  return dvae_codec.patches(onp.rint(images * (levels - 1))) / (levels - 1)


@pytest.mark.slow  # uses a trained tokenizer run
def test_tokenizer_run_must_match(tokenizer_run, tmp_path):
  with pytest.raises(ConfigError, match="grey_levels \\(3 there, 4 here\\)"):
    make(grey_levels=4, tokenizer_run=tokenizer_run)
  with pytest.raises(ConfigError, match="is not a vqvae_digits run"):
    make(tokenizer_run=str(tmp_path))


# --- the sampler -------------------------------------------------------------


def tiny_model(task):
  config = models.model_config("transformer", width=16, num_layers=2, num_heads=2)
  model = models.build(config, task.io)
  params = model.init(jax.random.key(1), jnp.zeros((1, task.io.length), jnp.int32))
  return model, params["params"]


@pytest.mark.parametrize("temperature, top_k", [(0.0, 0), (1.0, 0), (1.5, 2)])
def test_sampling_with_cache_equals_without(temperature, top_k):
  task = make()
  model, params = tiny_model(task)
  prompt = task.prompt(onp.stack([t2i.encode_caption(c)
                                  for c in ("seven", "the digit 3", "a picture of a 0")]))
  allowed = jnp.arange(task.vocab_size) >= task.image_offset
  run = lambda cache: jax.jit(lambda p, k: sampling.sample_lm(
      model, params, p, 64, temperature=temperature, top_k=top_k,
      rng=k if temperature else None, allowed_V=allowed, use_cache=cache))(
          prompt, jax.random.key(7))
  cached, full = onp.asarray(run(True)), onp.asarray(run(False))
  onp.testing.assert_array_equal(cached, full)
  assert cached.shape == (3, 64)  # stops at the image length
  assert (cached >= task.image_offset).all()
  if temperature > 0:
    assert len({r.tobytes() for r in cached}) > 1


def test_decode_loop_repeats_the_end_token():
  vocab, eos = 5, 3
  # A decoder whose next token is always token + 1 (mod vocab).
  step = lambda c, t: (jax.nn.one_hot((t + 1) % vocab, vocab) * 10, c)
  first = jax.nn.one_hot(jnp.array([0, 2]), vocab) * 10
  tokens = sampling.decode_loop(step, (), first, 6, eos_id=eos)
  onp.testing.assert_array_equal(tokens, [[0, 1, 2, 3, 3, 3], [2, 3, 3, 3, 3, 3]])
  with pytest.raises(ValueError, match="needs an `rng`"):
    sampling.decode_loop(step, (), first, 3, temperature=1.0)


# --- evaluation --------------------------------------------------------------


def test_classifier_is_fitted_on_real_training_images_only(monkeypatch):
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  seen = []
  fit = LogisticRegression.fit
  monkeypatch.setattr(LogisticRegression, "fit",
                      lambda self, x, y: seen.append((x, y)) or fit(self, x, y))
  task = make(grey_levels=3)
  digit_eval.classifier.cache_clear()
  clf = digit_eval.classifier(task)
  train_images, train_labels = task.images("train")
  assert len(seen) == 1
  onp.testing.assert_array_equal(seen[0][0], train_images.reshape(-1, 64))
  onp.testing.assert_array_equal(seen[0][1], train_labels)
  onp.testing.assert_array_equal(clf.train_images, train_images)
  # No held-out image among them.
  held_out = onp.concatenate([task.images(s)[0] for s in ("eval", "test")])
  raw = sequential_digits.load_splits(0, 180, 360)
  assert len(raw["train"][0]) + len(held_out) == 1797
  assert clf.test_accuracy > 0.8  # good enough to judge digits
  digits = onp.arange(10)
  by_digit = onp.stack([train_images[train_labels == d][0] for d in digits])
  result = digit_eval.caption_accuracy(clf, by_digit, digits)
  assert result["chance"] == 0.1 and result["num_images"] == 10
  assert digit_eval.memorisation(task, by_digit)["exact_copies"] == 1.0
  digit_eval.classifier.cache_clear()


# --- --mode=generate ---------------------------------------------------------


def launch(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), *args],
                        cwd=ROOT, capture_output=True, text=True, timeout=300,
                        check=False)


TINY = ["--config=experiments/text_to_image.py:quick", "--config.model.width=16",
        "--config.model.num_layers=1", "--config.train.steps=4",
        "--config.train.warmup_steps=1", "--config.train.eval_every=4",
        "--config.train.checkpoint_every=4", "--config.train.eval_batches=1",
        "--config.train.batch_size=8"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  return helpers.launched(str(tmp_path_factory.mktemp("t2i") / "run"), *TINY)


@pytest.mark.slow  # uses a launched run
def test_generate_writes_grids_and_caption_accuracy(tiny_run):
  result = launch(f"--workdir={tiny_run}", "--mode=generate", "--num_samples=2",
                  "--prompt=the digit 7", "--prompt=a handwritten three",
                  "--temperature=0.8", "--top_k=3", "--seed=1")
  assert result.returncode == 0, result.stderr[-2000:]
  pngs = sorted(os.path.basename(p)
                for p in glob.glob(os.path.join(tiny_run, "samples", "*.png")))
  assert pngs == ["a_handwritten_three_t0.8_k3_s1.png", "all_digits_t0.8_k3_s1.png",
                  "the_digit_7_t0.8_k3_s1.png"]
  with open(os.path.join(tiny_run, "samples", "samples_t0.8_k3_s1.json")) as f:
    summary = json.load(f)
  assert summary["all_digits"]["chance"] == 0.1
  assert summary["all_digits"]["num_images"] == 20
  assert 0 <= summary["all_digits"]["caption_accuracy"] <= 1
  assert sorted(summary["all_digits"]["per_digit"]) == [str(d) for d in range(10)]
  assert [p["digit"] for p in summary["prompts"]] == [7, 3]
  assert summary["classifier"]["num_train_images"] == 1257


def _files(workdir):
  return sorted(os.path.relpath(os.path.join(d, f), workdir)
                for d, _, fs in os.walk(workdir) for f in fs)


# Through launch.py (exit 2, one paragraph): a refusal of the sampler's options
# that needs the run's vocabulary, one of the prompt's words, and the flags of
# --mode=generate given to another mode. The other options' refusals are the
# same check_options and are called in-process below.
@pytest.mark.slow  # launches
@pytest.mark.parametrize("args, message", [
    (["--mode=generate", "--prompt=a purple seven"], "'purple'"),
    (["--mode=generate", "--top_k=100000"],
     r"--top_k=100000 is not allowed: 0 \(no limit\) or 1\.\.\d+, the model's vocabulary"),
    (["--mode=eval", "--temperature=0.5"], "--temperature is not used by --mode=eval; it serves --mode=generate"),
    (["--mode=eval", "--prompt=seven"], "--prompt is not used by --mode=eval; it serves --mode=generate"),
])
def test_bad_generate_input_exits_2_and_writes_nothing(tiny_run, args, message):
  before = _files(tiny_run)
  text = helpers.refusal(launch(f"--workdir={tiny_run}", *args))
  assert re.search(message, text), text
  assert _files(tiny_run) == before


@pytest.mark.slow  # uses a launched run
@pytest.mark.parametrize("options, message", [
    (dict(num_samples=0), "--num_samples=0 must be at least 1"),
    (dict(temperature=0.0, top_k=3), "needs --temperature > 0"),
    (dict(top_k=-1), r"--top_k=-1 is not allowed"),
    (dict(temperature=float("nan")),
     r"--temperature=nan is not allowed: a finite number >= 0 \(0: greedy\)"),
    (dict(temperature=float("inf")), r"--temperature=inf is not allowed"),
    (dict(temperature=-float("inf")), r"--temperature=-inf is not allowed"),
    (dict(temperature=-1.0), r"--temperature=-1.0 is not allowed"),
])
def test_bad_sampling_options_are_refused_before_anything_is_written(
    tiny_run, options, message):
  before = _files(tiny_run)
  with pytest.raises(ConfigError, match=message):
    generation.run(tiny_run, **options)
  assert _files(tiny_run) == before


def test_sampler_refuses_a_top_k_above_the_vocabulary_and_a_non_finite_temperature():
  logits = jnp.zeros((2, 7))
  with pytest.raises(ValueError, match="top_k=8 exceeds the vocabulary of 7"):
    sampling.choose(logits, jax.random.key(0), temperature=1.0, top_k=8)
  for temperature in (float("nan"), float("inf")):
    with pytest.raises(ValueError, match="must be finite"):
      sampling.check(temperature, 0, jax.random.key(0))


TWO_STEPS = dict(steps=2, batch_size=4, warmup_steps=1, eval_every=2,
                 checkpoint_every=2, eval_batches=1)


@pytest.mark.slow  # trains and samples
def test_generate_tokens_for_another_decoder(tmp_path):
  config = helpers.run_config(
      tasks.task_config("copy_memory", delay=4, num_symbols=2, alphabet=4),
      models.model_config("transformer", width=8, num_layers=1, num_heads=2),
      **TWO_STEPS)
  workdir = str(tmp_path / "copy")
  train.train_and_evaluate(config, workdir, progress=False)
  result = generation.run(workdir, num_samples=3, temperature=0.0)
  length = tasks.build(config.task).io.length
  assert len(result["tokens"]) == 3
  assert len(result["prompts"][0]) + len(result["tokens"][0]) == length + 1
  assert os.path.exists(os.path.join(workdir, "samples", "tokens.json"))
  with pytest.raises(ConfigError, match="token ids must lie in"):
    generation.run(workdir, prompts=["1 2 99"])


@pytest.mark.slow  # trains and samples
def test_generate_tokens_for_an_encoder_decoder(tmp_path):
  config = helpers.run_config(
      tasks.task_config("reverse", length=3, vocab=3),
      models.model_config("transformer_encdec", width=8, num_layers=1, num_heads=2),
      **TWO_STEPS)
  workdir = str(tmp_path / "reverse")
  train.train_and_evaluate(config, workdir, progress=False)
  io = tasks.build(config.task).io
  result = generation.run(workdir, prompts=["0 1 2"], num_samples=5,
                          temperature=1.0, top_k=2, seed=3)
  assert result["prompts"] == [[0, 1, 2]] * 5
  assert onp.array(result["tokens"]).shape == (5, io.target_length)
  with pytest.raises(ConfigError, match="has 3 tokens, not 2"):
    generation.run(workdir, prompts=["0 1"])


def test_a_rows_sample_does_not_depend_on_the_rest_of_the_batch():
  logits = jax.random.normal(jax.random.key(0), (5, 7))
  key = jax.random.key(3)
  alone = sampling.choose(logits[:2], key, temperature=1.0)
  more = sampling.choose(logits, key, temperature=1.0)
  onp.testing.assert_array_equal(alone, more[:2])
