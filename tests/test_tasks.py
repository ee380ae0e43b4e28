"""The task suite: hand-worked examples, independent NumPy checks of every
generator, determinism, disjoint splits, chance levels and ListOps data."""

import collections
import functools
import math
import os
import statistics

import jax
import jax.numpy as jnp
import ml_collections
import numpy as onp
import pytest

from seqjax import configs
from seqjax import experiment
from seqjax import models
from seqjax import stepping
from seqjax import tasks
from seqjax.errors import ConfigError
from seqjax.experiment import DATA_SPLITS
from seqjax.tasks import flip_flop as flip_flop_lib
from seqjax.tasks import listops as listops_lib

jax.config.update("jax_numpy_rank_promotion", "raise")

SMALL = {
    "copy_memory": dict(delay=6, num_symbols=3, alphabet=4),
    "adding": dict(length=12),
    "selective_copy": dict(length=24, num_tokens=4, vocab=6),
    "associative_recall": dict(length=32, num_pairs=4, vocab=40),
    "induction_heads": dict(length=16, vocab=5, eval_lengths=(32,)),
    "flip_flop": dict(num_instructions=12, p_ignore=0.5),
    "reverse": dict(length=3, vocab=3),
    "sequential_digits": dict(),
    "listops": dict(max_length=40, min_length=10, num_train=120, num_valid=30,
                    num_test=30),
}


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory, monkeypatch):
  monkeypatch.setenv("SEQJAX_DATA", str(tmp_path_factory.getbasetemp() / "data"))


def make(name, **overrides):
  return tasks.build(tasks.task_config(name, **{**SMALL[name], **overrides}))


@functools.lru_cache(maxsize=None)
def batch_fn(task, batch_size):
  return jax.jit(lambda k: task.batch(k, batch_size))


def get(task, seed=0, batch_size=64):
  batch = batch_fn(task, batch_size)(jax.random.key(seed))
  return {k: onp.asarray(v) for k, v in batch.items()}


# --- hand-worked examples ----------------------------------------------------


def test_flip_flop_hand_example():
  # w1 i0 r? w0 i1 r? : reads return 1, then 0 (the bits drawn for reads ignored).
  W, R, I = flip_flop_lib.WRITE, flip_flop_lib.READ, flip_flop_lib.IGNORE
  ops = jnp.array([[W, I, R, W, I, R]])
  bits = jnp.array([[1, 0, 0, 0, 1, 1]])
  tokens = flip_flop_lib.FlipFlop.tokens(ops, bits)
  assert tokens.tolist() == [[0, 4, 2, 3, 1, 4, 0, 3, 2, 4, 1, 3]]
  task = make("flip_flop")
  assert task.read_positions(tokens).tolist() == [
      [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0]]


def test_reverse_hand_example():
  task = make("reverse")  # vocab 3: EOS = 3, BOS = 4
  batch = task.example(jnp.array([[0, 1, 2]]))
  assert batch["targets"].tolist() == [[2, 1, 0, 3]]
  assert batch["decoder_inputs"].tolist() == [[4, 2, 1, 0]]
  assert batch["mask"].tolist() == [[1, 1, 1, 1]]
  assert (task.io.bos_id, task.io.eos_id, task.io.target_length) == (4, 3, 4)
  right = jnp.array([[2, 1, 0, 3], [2, 1, 0, 3]])
  batch2 = task.example(jnp.array([[0, 1, 2], [0, 1, 1]]))
  gen = task.generation_metrics(right, batch2)
  assert float(gen["exact_match"]) == 0.5
  assert float(gen["generated_accuracy"]) == pytest.approx(7 / 8)


def test_digits_patch_layout_hand_example():
  task = make("sequential_digits", layout="patches")
  image = onp.arange(64, dtype=onp.float32).reshape(1, 8, 8)
  patches = task.features(image)
  assert patches.shape == (1, 4, 16)
  assert patches[0, 0].tolist() == [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19,
                                    24, 25, 26, 27]
  assert patches[0, 1, :4].tolist() == [4, 5, 6, 7]        # top-right
  assert patches[0, 2, :4].tolist() == [32, 33, 34, 35]    # bottom-left
  assert patches[0, 3, -1] == 63                           # bottom-right
  pixels = make("sequential_digits").features(image)
  assert pixels[0, :, 0].tolist() == list(range(64))
  permuted = make("sequential_digits", permute=True).features(image)[0, :, 0]
  assert sorted(permuted.tolist()) == list(range(64))
  assert permuted.tolist() != list(range(64))


def test_listops_hand_examples():
  ids = listops_lib.tokenize("( ( ( [MAX 2 ) 9 ) ] )")
  assert ids == [12, 3, 10, 15]
  assert [listops_lib.VOCAB[i] for i in ids] == ["[MAX", "2", "9", "]"]
  assert listops_lib._apply("[MED", [1, 2, 3, 9]) == 2   # median 2.5 -> 2
  assert listops_lib._apply("[SM", [9, 8, 7]) == 4
  assert reference_eval("[MIN 3 [MAX 2 9 ] ]".split()) == 3
  assert reference_eval("[SM 5 [MED 1 8 ] 7 ]".split()) == 6   # 5 + 4 + 7 = 16
  with pytest.raises(ValueError, match="FIRST"):
    listops_lib.tokenize("( ( [FIRST 1 ) ] )")


def test_listops_max_tree_length():
  assert listops_lib.max_tree_length(1, 10) == 1
  assert listops_lib.max_tree_length(2, 3) == 2 + 3          # [OP d d d ]
  assert listops_lib.max_tree_length(3, 2) == 2 + 2 * 4


# --- each generator against an independent NumPy check -----------------------


def test_copy_memory_structure():
  task = make("copy_memory")
  b = get(task)
  k, delay = task.num_symbols, task.delay
  symbols = b["inputs"][:, :k]
  assert ((symbols >= 1) & (symbols <= task.alphabet)).all()
  assert (b["inputs"][:, k:k + delay - 1] == 0).all()
  assert (b["inputs"][:, k + delay - 1] == task.alphabet + 1).all()
  assert (b["inputs"][:, -k:] == 0).all()
  onp.testing.assert_array_equal(b["targets"][:, -k:], symbols)
  assert (b["targets"][:, :-k] == 0).all()
  assert task.baseline_loss == pytest.approx(3 * math.log(4) / 12)


def test_adding_structure():
  task = make("adding")
  b = get(task, batch_size=512)
  values, markers = b["inputs"][..., 0], b["inputs"][..., 1]
  assert ((values >= 0) & (values < 1)).all()
  assert (markers.sum(1) == 2).all()
  assert (markers[:, :6].sum(1) == 1).all() and (markers[:, 6:].sum(1) == 1).all()
  onp.testing.assert_allclose(b["targets"][:, -1, 0], (values * markers).sum(1),
                              rtol=1e-6)
  assert b["mask"].sum() == 512 and (b["mask"][:, -1] == 1).all()


def test_selective_copy_structure():
  task = make("selective_copy")
  b = get(task)
  m, region = task.num_tokens, task.length - task.num_tokens
  assert (b["inputs"][:, region:] == task.vocab - 1).all()
  for row_in, row_out in zip(b["inputs"][:, :region], b["targets"][:, region:]):
    symbols = row_in[row_in != 0]
    assert len(symbols) == m and ((symbols >= 1) & (symbols < task.vocab - 1)).all()
    onp.testing.assert_array_equal(symbols, row_out)
  assert (b["mask"][:, region:] == 1).all() and b["mask"].sum() == 64 * m
  # The positions vary between examples (selective, not fixed-lag copying).
  first = (b["inputs"][:, :region] != 0).argmax(1)
  assert len(set(first.tolist())) > 3


def test_associative_recall_structure():
  task = make("associative_recall")
  b = get(task)
  p, v = task.num_pairs, task.vocab
  for x, y, w in zip(b["inputs"], b["targets"], b["mask"]):
    keys, values = x[0:2 * p:2], x[1:2 * p:2]
    assert len(set(keys)) == p and len(set(values)) == p
    assert ((keys >= 1) & (keys < v // 2)).all()
    assert ((values >= v // 2) & (values < v)).all()
    queries = onp.flatnonzero(w)
    assert len(queries) == p and ((queries - 2 * p) % 2 == 0).all()
    assert sorted(x[queries]) == sorted(keys)
    answer = dict(zip(keys, values))
    assert [y[q] for q in queries] == [answer[x[q]] for q in queries]
  # Power law: gaps cluster near the pairs but not all at once.
  gaps = [(onp.flatnonzero(w) - 2 * p) // 2 for w in b["mask"]]
  assert onp.mean(onp.concatenate(gaps)) < (task.length - 2 * p) / 4


def test_induction_heads_structure():
  task = make("induction_heads")
  b = get(task)
  special = task.vocab - 1
  for x, y, w in zip(b["inputs"], b["targets"], b["mask"]):
    where = onp.flatnonzero(x == special)
    assert len(where) == 2 and where[1] == task.length - 1
    assert where[0] <= task.length - 3
    assert y[-1] == x[where[0] + 1] and w.tolist() == [0] * 15 + [1]
  longer = task.eval_sets["len32"]
  assert longer.length == 32 and get(longer)["inputs"].shape == (64, 32)


def test_flip_flop_structure():
  task = make("flip_flop")
  b = get(task)
  for x, y, w in zip(b["inputs"], b["targets"], b["mask"]):
    ops, bits = x[0::2], x[1::2] - 3
    assert ops[0] == 0 and ops[-1] == 1 and set(bits) <= {0, 1}
    last = None
    for t, (op, bit) in enumerate(zip(ops, bits)):
      if op == 0:
        last = bit
      if op == 1:
        assert bit == last and w[2 * t] == 1 and y[2 * t] == 3 + last
    assert w.sum() == (ops == 1).sum()
    onp.testing.assert_array_equal(y[:-1], x[1:])
  sparse, dense = task.eval_sets["sparse"], task.eval_sets["dense"]
  ignores = lambda t: (get(t, batch_size=512)["inputs"][:, 2:-2:2] == 2).mean()
  assert ignores(dense) == pytest.approx(0.1, abs=0.03)
  assert ignores(sparse) == pytest.approx(0.98, abs=0.01)


def test_reverse_structure():
  task = make("reverse")
  b = get(task)
  onp.testing.assert_array_equal(b["targets"][:, :-1], b["inputs"][:, ::-1])
  assert (b["targets"][:, -1] == task.eos_id).all()
  onp.testing.assert_array_equal(b["decoder_inputs"][:, 1:], b["targets"][:, :-1])
  assert (b["decoder_inputs"][:, 0] == task.bos_id).all()


def reference_eval(tokens: list[str]) -> int:
  """Independent ListOps evaluator: a stack machine over the tokens."""
  stack = []
  for t in tokens:
    if t == "]":
      args = []
      while not isinstance(stack[-1], str):
        args.append(stack.pop())
      op = stack.pop()
      stack.append({"[MIN": min, "[MAX": max,
                    "[MED": lambda a: math.floor(statistics.median(a)),
                    "[SM": lambda a: sum(a) % 10}[op](args))
    elif t.startswith("["):
      stack.append(t)
    else:
      stack.append(int(t))
  assert len(stack) == 1
  return stack[0]


def listops_rows(task, split):
  d = task.data(split)
  return onp.asarray(d["inputs"]), onp.asarray(d["labels"])


def test_listops_generated_labels_lengths_and_no_duplicates():
  task = make("listops")
  seen = set()
  for split, n in (("train", 120), ("eval", 30), ("test", 30)):
    ids, labels = listops_rows(task, split)
    assert ids.shape == (n, 40)
    for row, label in zip(ids, labels):
      tokens = [listops_lib.VOCAB[i] for i in row if i != 0]
      assert 10 < len(tokens) < 40
      assert (row[-len(tokens):] != 0).all()          # left-padded
      assert reference_eval(tokens) == label
      seen.add(tuple(tokens))
  assert len(seen) == 180
  assert os.path.exists(task.cache_path())
  right = make("listops", padding="right")
  ids, _ = listops_rows(right, "train")
  assert (ids[:, 0] != 0).all() and (ids[:, -1] == 0).all()


def test_listops_rules_distribution():
  """LRA rules: max depth, max args, operator probability 0.25 below max depth."""
  import random  # pylint: disable=import-outside-toplevel
  rng = random.Random(1)
  ops = leaves = 0
  deepest = widest = 0
  for _ in range(300):
    tokens, value = listops_lib.generate_tree(rng, 1, 4, 5)
    assert reference_eval(tokens) == value
    depth = 1
    stack_args = []
    for t in tokens:
      if t.startswith("["):
        depth += 1
        deepest = max(deepest, depth - 1)
        stack_args.append(0)
      elif t == "]":
        depth -= 1
        widest = max(widest, stack_args.pop())
        if stack_args:
          stack_args[-1] += 1
      elif stack_args:
        stack_args[-1] += 1
    ops += sum(t.startswith("[") for t in tokens)
    leaves += sum(t.isdigit() for t in tokens)
  assert deepest <= 3 and widest <= 5       # operators only above max depth 4
  assert 0.1 < ops / (ops + leaves) < 0.4


def test_listops_reads_official_tsv(tmp_path):
  rows = {"train": [("( ( ( [MAX 2 ) 9 ) ] )", 9),
                    ("( ( ( [MIN 3 ) ( ( ( [MAX 2 ) 9 ) ] ) ) ] )", 3)],
          "eval": [("( ( ( [SM 5 ) 8 ) ] )", 3)],
          "test": [("( ( ( ( [MED 1 ) 8 ) 3 ) ] )", 3)]}
  for split, name in listops_lib.TSV_FILES.items():
    with open(tmp_path / name, "w") as f:
      f.write("Source\tTarget\n")
      f.writelines(f"{s}\t{t}\n" for s, t in rows[split])
  task = make("listops", tsv_dir=str(tmp_path), max_length=8, min_length=0)
  ids, labels = listops_rows(task, "train")
  assert labels.tolist() == [9, 3]
  assert ids[0].tolist() == [0, 0, 0, 0, 12, 3, 10, 15]
  assert [listops_lib.VOCAB[i] for i in ids[1] if i] == \
      "[MIN 3 [MAX 2 9 ] ]".split()
  assert listops_rows(task, "test")[1].tolist() == [3]
  with pytest.raises(ConfigError, match="basic_train.tsv"):
    make("listops", tsv_dir=str(tmp_path / "nowhere"))


# --- determinism and splits --------------------------------------------------


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_key_same_batch_different_key_different_batch(name):
  task = make(name)
  a, b, c = get(task, 0), get(task, 0), get(task, 1)
  for k in a:
    onp.testing.assert_array_equal(a[k], b[k])
  assert not onp.array_equal(a["inputs"], c["inputs"])


def small_experiment(name, **overrides):
  config = ml_collections.ConfigDict()
  config.task = tasks.task_config(name, **{**SMALL[name], **overrides})
  config.model = models.model_config("lstm", width=4)
  config.train = configs.train_defaults()
  config.train.update(batch_size=32, steps=10, warmup_steps=1)
  return experiment.build(config)


def rows_of(inputs):
  x = onp.asarray(inputs, onp.float64)
  return {r.tobytes() for r in x.reshape(x.shape[0], -1)}


@pytest.mark.parametrize("name", ["sequential_digits", "listops"])
def test_dataset_streams_draw_from_disjoint_splits(name):
  exp = small_experiment(name)
  task = exp.task
  split_rows = {s: rows_of(task.data(s)["inputs"])
                for s in ("train", "eval", "test")}
  for stream, split in DATA_SPLITS.items():
    fn = stepping.make_batch_fn(exp, stream)
    drawn = rows_of(fn(0)["inputs"]) | rows_of(fn(1)["inputs"])
    assert drawn <= split_rows[split], split
    others = set().union(*(v for s, v in split_rows.items() if s != split))
    assert not drawn & others, split
  a, b = stepping.make_batch_fn(exp, experiment.TRAIN)(3), stepping.make_batch_fn(exp, experiment.TRAIN)(3)
  onp.testing.assert_array_equal(a["inputs"], b["inputs"])


def test_eval_splits_and_their_tasks():
  exp = small_experiment("flip_flop")
  names = lambda splits: [s.name for s in splits]
  assert names(stepping.eval_splits(exp, "eval")) == ["eval", "eval_dense", "eval_sparse"]
  assert stepping.find_split(exp, "test_sparse").task.p_ignore == 0.98
  assert stepping.find_split(exp, "test_sparse").stream == experiment.TEST
  assert stepping.find_split(exp, "test").task is exp.task
  exp = small_experiment("induction_heads")
  assert names(stepping.eval_splits(exp, "test")) == ["test", "test_len32"]
  assert names(stepping.eval_splits(small_experiment("adding"), "eval")) == ["eval"]


def test_bad_task_values_raise_config_error():
  for name, bad, match in [
      ("associative_recall", dict(vocab=16), "vocab"),
      ("selective_copy", dict(length=6), "length"),
      ("flip_flop", dict(p_ignore=1.0), "p_ignore"),
      ("sequential_digits", dict(layout="patches", permute=True), "permute"),
      ("listops", dict(min_length=39), "min_length"),
      ("listops", dict(padding="middle"), "padding"),
      ("induction_heads", dict(eval_lengths=(2,)), "eval_lengths")]:
    with pytest.raises(ConfigError, match=match):
      make(name, **bad)


# --- chance levels, against the most frequent answer -------------------------


def scored(task, seeds, batch_size=512):
  """(targets at scored positions, matching `task.metric`'s positions)."""
  out = []
  for s in seeds:
    b = get(task, s, batch_size)
    w = (task.read_positions(jnp.asarray(b["inputs"])) if hasattr(
        task, "read_positions") else b["mask"])
    out.append(b["targets"][onp.asarray(w) > 0])
  return onp.concatenate(out)


@pytest.mark.parametrize("name", ["copy_memory", "selective_copy",
                                  "associative_recall", "induction_heads",
                                  "flip_flop"])
def test_chance_is_the_accuracy_of_the_most_frequent_answer(name):
  task = make(name)
  if name == "copy_memory":  # the headline is measured at the recall positions
    b = get(task, 0, 512)
    train_answers = b["targets"][:, -task.num_symbols:].ravel()
    held_out = onp.concatenate([get(task, s, 512)["targets"][:, -task.num_symbols:]
                                .ravel() for s in (1, 2)])
  else:
    train_answers, held_out = scored(task, [0]), scored(task, [1, 2])
  most_frequent = collections.Counter(train_answers.tolist()).most_common(1)[0][0]
  acc = (held_out == most_frequent).mean()
  sigma = math.sqrt(task.chance * (1 - task.chance) / len(held_out))
  assert abs(acc - task.chance) < 4 * sigma + 1e-3, (acc, task.chance)


def test_adding_chance_is_mse_of_constant_one():
  task = make("adding")
  sums = onp.concatenate([get(task, s, 512)["targets"][:, -1, 0]
                          for s in (1, 2, 3, 4)])
  # (s - 1) is triangular on [-1, 1]: E = 1/6, Var((s - 1)^2) = 1/15 - 1/36.
  sigma = math.sqrt((1 / 15 - 1 / 36) / len(sums))
  assert onp.mean((sums - 1.0) ** 2) == pytest.approx(task.chance, abs=4 * sigma)
  assert onp.mean(sums) == pytest.approx(1.0, abs=4 * math.sqrt(1 / 6 / len(sums)))


def test_reverse_chance_is_exact_match_of_the_most_frequent_output():
  task = make("reverse", length=2, vocab=2)
  b = {k: jnp.asarray(v) for k, v in get(task, 1, 512).items()}
  constant = jnp.broadcast_to(jnp.array([0, 0, task.eos_id]), b["targets"].shape)
  exact = float(task.generation_metrics(constant, b)["exact_match"])
  assert exact == pytest.approx(task.chance, abs=4 * math.sqrt(0.25 * 0.75 / 512))


@pytest.mark.parametrize("name", ["sequential_digits", "listops"])
def test_dataset_chance_is_the_most_frequent_training_label(name):
  task = make(name)
  labels = onp.asarray(task.data("train")["labels"])
  most_frequent = onp.bincount(labels).argmax()
  assert task.chance == pytest.approx((labels == most_frequent).mean())
  test_labels = onp.asarray(task.data("test")["labels"])
  assert abs((test_labels == most_frequent).mean() - task.chance) < 0.2
  if name == "sequential_digits":
    assert task.chance == pytest.approx(0.1, abs=0.02)  # near-balanced classes
    sizes = [len(task.data(s)["labels"]) for s in ("train", "eval", "test")]
    assert sizes == [1257, 180, 360]


def test_metrics_score_only_masked_positions():
  task = make("selective_copy")
  b = {k: jnp.asarray(v) for k, v in get(task, 0).items()}
  perfect = jax.nn.one_hot(b["targets"], task.vocab) * 50.0
  wrong_elsewhere = jnp.where(b["mask"][..., None] > 0, perfect,
                              jax.nn.one_hot(b["targets"] + 1, task.vocab) * 50.0)
  m = task.metrics(wrong_elsewhere, b)
  assert float(m["accuracy"]) == 1.0 and float(m["sequence_accuracy"]) == 1.0
  assert float(m["loss"]) < 1e-6
