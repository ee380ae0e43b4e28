"""The Long Range Arena tasks: Pathfinder labels checked by an independent flood
fill, determinism and disjoint splits of the generated data, the file loaders
on tiny files in the official formats (exact batches), and clear ConfigErrors
for missing or malformed files."""

import collections
import os

import jax
import numpy as onp
import pytest

from seqjax import experiment
from seqjax import stepping
from seqjax import tasks
from seqjax import train
from seqjax.errors import ConfigError

import helpers  # pylint: disable=g-bad-import-order

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory, monkeypatch):
  monkeypatch.setenv("SEQJAX_DATA", str(tmp_path_factory.getbasetemp() / "data"))


def make(name, **fields):
  return tasks.build(tasks.task_config(name, **fields))


def rows_of(x):
  x = onp.asarray(x, onp.int64)
  return {r.tobytes() for r in x.reshape(x.shape[0], -1)}


# --- Pathfinder ---------------------------------------------------------------

SMALL_PF = dict(num_train=60, num_valid=20, num_test=20)


def flood_fill(image, start, link):
  """Lit pixels (> 0) reachable from `start` through lit pixels at most `link`
  apart (Chebyshev): a breadth-first search written from the definition."""
  size = image.shape[0]
  seen = {tuple(start)}
  queue = collections.deque([tuple(start)])
  while queue:
    y, x = queue.popleft()
    for dy in range(-link, link + 1):
      for dx in range(-link, link + 1):
        q = (y + dy, x + dx)
        if (0 <= q[0] < size and 0 <= q[1] < size and q not in seen
            and image[q] > 0):
          seen.add(q)
          queue.append(q)
  return seen


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_pathfinder_labels_agree_with_a_flood_fill(resolution):
  task = make("pathfinder", resolution=resolution, **SMALL_PF)
  d = task._splits()["train"]  # pylint: disable=protected-access
  images, labels, markers = d["images"], d["labels"], d["markers"]
  assert images.shape == (60, resolution, resolution)
  assert images.dtype == onp.uint8 and labels.dtype == onp.int32
  count = 0
  for image, label, (a, b) in zip(images, labels, markers):
    assert image[tuple(a)] == 255 and image[tuple(b)] == 255   # marker centres
    connected = tuple(b) in flood_fill(image, a, task.link)
    assert connected == bool(label)
    # Dashes are one pixel wide, so a fully lit 3x3 block is inside a marker:
    # nothing else in the image looks like one.
    lit = image > 0
    full = onp.ones((resolution - 2, resolution - 2), bool)
    for dy in range(3):
      for dx in range(3):
        full &= lit[dy:dy + resolution - 2, dx:dx + resolution - 2]
    for y, x in zip(*onp.nonzero(full)):
      assert min(max(abs(y + 1 - c[0]), abs(x + 1 - c[1])) for c in (a, b)) <= 2
    if resolution == 64:  # dashes at 204: the level 255 is the two markers only
      radius = 2.5
      discs = {(int(c[0]) + dy, int(c[1]) + dx) for c in (a, b)
               for dy in range(-2, 3) for dx in range(-2, 3)
               if dy * dy + dx * dx <= radius * radius}
      assert set(zip(*onp.nonzero(image == 255))) == discs
    count += 1
  assert count == 60
  assert 10 <= labels.sum() <= 50     # both labels occur, near-balanced


def test_pathfinder_sequences_and_io():
  task = make("pathfinder", **SMALL_PF)
  assert task.io.length == 1024 and task.io.input_vocab == 256
  assert task.io.output_size == 2 and task.io.kind == "classify"
  d = task._splits()["eval"]  # pylint: disable=protected-access
  data = task.data("eval")
  onp.testing.assert_array_equal(onp.asarray(data["inputs"]),
                                 d["images"].reshape(20, 1024))  # row-major
  batch = task.sample(data, jax.random.key(0), 8)
  assert batch["inputs"].dtype == onp.int32 and batch["inputs"].shape == (8, 1024)
  assert batch["mask"][:, -1].tolist() == [1.0] * 8
  assert onp.asarray(batch["mask"][:, :-1]).sum() == 0
  assert set(onp.asarray(batch["targets"]).ravel().tolist()) <= {0, 1}
  # Path-X: 128 x 128 = 16,384 tokens (only the spec; nothing is generated).
  assert make("pathfinder", resolution=128).io.length == 16384


def test_pathfinder_is_deterministic_and_cached(tmp_path, monkeypatch):
  from seqjax.tasks import pathfinder  # pylint: disable=import-outside-toplevel
  task = make("pathfinder", **SMALL_PF)
  first = task._splits()  # pylint: disable=protected-access
  path = task.cache_path()
  assert os.path.exists(path)
  assert not [f for f in os.listdir(os.path.dirname(path)) if "tmp" in f]
  # Generated again elsewhere, from scratch: the same images and labels.
  monkeypatch.setenv("SEQJAX_DATA", str(tmp_path / "again"))
  pathfinder._load.cache_clear()  # pylint: disable=protected-access
  again = make("pathfinder", **SMALL_PF)
  assert again.cache_path() != path
  second = again._splits()  # pylint: disable=protected-access
  for split in ("train", "eval", "test"):
    for k in ("images", "labels", "markers"):
      onp.testing.assert_array_equal(first[split][k], second[split][k])
  other = make("pathfinder", data_seed=1, **SMALL_PF)._splits()  # pylint: disable=protected-access
  assert not onp.array_equal(other["train"]["images"], first["train"]["images"])


def test_pathfinder_splits_are_disjoint_and_streams_draw_from_them():
  import ml_collections  # pylint: disable=import-outside-toplevel
  from seqjax import configs, models  # pylint: disable=import-outside-toplevel
  config = ml_collections.ConfigDict()
  config.task = tasks.task_config("pathfinder", **SMALL_PF)
  config.model = models.model_config("lstm", width=4)
  config.train = configs.train_defaults()
  config.train.update(batch_size=16, steps=10, warmup_steps=1)
  exp = experiment.build(config)
  split_rows = {s: rows_of(exp.task.data(s)["inputs"])
                for s in ("train", "eval", "test")}
  assert [len(v) for v in split_rows.values()] == [60, 20, 20]  # no duplicates
  for stream, split in experiment.DATA_SPLITS.items():
    drawn = rows_of(stepping.make_batch_fn(exp, stream)(0)["inputs"])
    assert drawn <= split_rows[split]
    others = set().union(*(v for s, v in split_rows.items() if s != split))
    assert not drawn & others


def test_pathfinder_bad_values():
  for bad, match in [(dict(resolution=48), "resolution"),
                     (dict(contour_length=1), "contour_length"),
                     (dict(num_valid=0), "num_valid")]:
    with pytest.raises(ConfigError, match=match):
      make("pathfinder", **bad)


# --- your own text --------------------------------------------------------------


def write(path, data: bytes):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)
  return str(path)


def find_row(haystack: bytes, row) -> int:
  at = haystack.find(bytes(bytearray(int(v) for v in row)))
  assert at >= 0, "a window that is not in its split"
  return at


def test_text_bytes_contiguous_splits_and_exact_windows(tmp_path):
  corpus = bytes(range(256)) * 4                       # 1,024 bytes
  path = write(tmp_path / "corpus.txt", corpus)
  task = make("text", path=path, length=16, valid_fraction=0.125,
              test_fraction=0.125)
  assert task.io.kind == "lm" and task.io.input_vocab == 256
  assert task.chance == 8.0 and task.mode == "min"
  splits = {s: bytes(onp.asarray(task.data(s)["tokens"]).tolist())
            for s in ("train", "eval", "test")}
  assert splits["train"] + splits["eval"] + splits["test"] == corpus
  assert [len(v) for v in splits.values()] == [768, 128, 128]
  for split in ("train", "eval", "test"):
    batch = task.sample(task.data(split), jax.random.key(1), 6)
    inputs, targets = onp.asarray(batch["inputs"]), onp.asarray(batch["targets"])
    assert inputs.shape == targets.shape == (6, 16)
    assert onp.asarray(batch["mask"]).min() == 1.0
    for x, y in zip(inputs, targets):
      at = find_row(splits[split], x)        # inputs: a window of the split
      assert bytes(y.tolist()) == splits[split][at + 1:at + 17]  # next bytes


def test_text_folder_chars_and_bits_per_byte(tmp_path):
  write(tmp_path / "d" / "b.txt", "wörld ✓ ".encode() * 20)
  write(tmp_path / "d" / "a" / "x.txt", "héllo ".encode() * 20)
  task = make("text", path=str(tmp_path / "d"), unit="char", length=8)
  text = "héllo " * 20 + "wörld ✓ " * 20                  # sorted paths: a/x, b
  vocab = sorted(set(text))
  assert task.io.input_vocab == len(vocab)
  tokens = onp.concatenate([onp.asarray(task.data(s)["tokens"])
                            for s in ("train", "eval", "test")])
  assert "".join(vocab[i] for i in tokens) == text
  per_byte = len(text) / len(text.encode())
  uniform = jax.numpy.zeros((2, 8, len(vocab)))
  batch = task.sample(task.data("train"), jax.random.key(0), 2)
  bpb = float(task.metrics(uniform, batch)["bits_per_byte"])
  assert bpb == pytest.approx(onp.log2(len(vocab)) * per_byte, rel=1e-5)
  assert task.chance == pytest.approx(bpb, rel=1e-5)


def test_text_bad_paths_and_files(tmp_path):
  with pytest.raises(ConfigError, match="does not exist"):
    make("text", path=str(tmp_path / "nowhere.txt"))
  with pytest.raises(ConfigError, match="does not exist"):
    make("text")                                         # no path given
  os.makedirs(tmp_path / "empty")
  with pytest.raises(ConfigError, match="holds no files"):
    make("text", path=str(tmp_path / "empty"))
  short = write(tmp_path / "short.txt", b"abc" * 10)
  with pytest.raises(ConfigError, match="too short for task.length=1024"):
    make("text", path=short)
  latin1 = write(tmp_path / "latin1.txt", "café ".encode("latin-1") * 100)
  with pytest.raises(ConfigError, match="not valid UTF-8"):
    make("text", path=latin1, unit="char", length=8)
  assert make("text", path=latin1, length=8).io.input_vocab == 256  # bytes: any


# --- LRA Text: IMDB reviews, bytes ---------------------------------------------------


def write_imdb(root):
  reviews = {
      "train/neg": {"0_1.txt": b"Awful.", "1_2.txt": "Pas bon, trop long\xe9".encode()},
      "train/pos": {"2_9.txt": "Très bien!".encode(), "3_10.txt": b"Loved it"},
      "test/neg": {"0_2.txt": b"Meh"},
      "test/pos": {"0_8.txt": b"A fine film, truly"},
  }
  for folder, files in reviews.items():
    for name, text in files.items():
      write(os.path.join(root, folder, name), text)
  write(os.path.join(root, "train", "unsup", "0_0.txt"), b"ignored")
  write(os.path.join(root, "README"), b"not a review")
  return str(root)


def byte_row(text: bytes, length: int, padding="left"):
  ids = [b + 1 for b in text[:length]]                 # ByteTextEncoder: 0 pads
  pad = [0] * (length - len(ids))
  return pad + ids if padding == "left" else ids + pad


def test_imdb_reads_acl_imdb_as_lra_bytes(tmp_path):
  root = write_imdb(tmp_path / "aclImdb")
  task = make("imdb", data_dir=root, max_length=8, valid_size=0)
  assert task.io.input_vocab == 257 and task.io.length == 8
  train = task.data("train")
  assert onp.asarray(train["inputs"]).tolist() == [
      byte_row(b"Awful.", 8), byte_row("Pas bon, trop long\xe9".encode(), 8),
      byte_row("Très bien!".encode(), 8), byte_row(b"Loved it", 8)]
  assert onp.asarray(train["labels"]).tolist() == [0, 0, 1, 1]
  test = task.data("test")
  assert onp.asarray(test["inputs"]).tolist() == [
      byte_row(b"Meh", 8), byte_row(b"A fine film, truly", 8)]
  onp.testing.assert_array_equal(task.data("eval")["inputs"], test["inputs"])
  right = make("imdb", data_dir=root, max_length=8, valid_size=0, padding="right")
  assert onp.asarray(right.data("test")["inputs"])[0].tolist() == byte_row(
      b"Meh", 8, "right")
  # A batch: rows of the split, the label at the last position only.
  batch = task.sample(train, jax.random.key(3), 5)
  index = jax.random.randint(jax.random.key(3), (5,), 0, 4)
  onp.testing.assert_array_equal(batch["inputs"],
                                 onp.asarray(train["inputs"])[onp.asarray(index)])
  assert batch["inputs"].dtype == onp.int32
  onp.testing.assert_array_equal(
      batch["targets"][:, -1], onp.asarray(train["labels"])[onp.asarray(index)])
  assert onp.asarray(batch["mask"]).sum() == 5


def test_imdb_held_out_validation_is_disjoint_from_training(tmp_path):
  root = write_imdb(tmp_path / "aclImdb")
  task = make("imdb", data_dir=root, max_length=32, valid_size=1)
  train, valid = rows_of(task.data("train")["inputs"]), rows_of(task.data("eval")["inputs"])
  assert len(train) == 3 and len(valid) == 1 and not train & valid
  everything = make("imdb", data_dir=root, max_length=32, valid_size=0)
  assert train | valid == rows_of(everything.data("train")["inputs"])
  with pytest.raises(ConfigError, match="valid_size=4 leaves no training"):
    make("imdb", data_dir=root, max_length=32, valid_size=4)


def test_imdb_missing_folders_name_the_expected_layout(tmp_path):
  with pytest.raises(ConfigError, match=r"is not a directory.*aclImdb_v1.tar.gz"):
    make("imdb", data_dir=str(tmp_path / "nowhere"))
  with pytest.raises(ConfigError, match="is not a directory"):
    make("imdb")
  root = write_imdb(tmp_path / "aclImdb")
  for name in os.listdir(os.path.join(root, "test", "pos")):
    os.remove(os.path.join(root, "test", "pos", name))
  with pytest.raises(ConfigError, match=r"no reviews in test/pos.*train/neg/\*.txt"):
    make("imdb", data_dir=root)


# --- LRA Image: CIFAR-10 in grey levels -------------------------------------------------


def cifar_record(label, rgb_fn):
  """One binary record: the label, then the R, G and B planes, row-major."""
  planes = [[rgb_fn(i, j)[c] for i in range(32) for j in range(32)]
            for c in range(3)]
  return bytes([label] + planes[0] + planes[1] + planes[2])


def write_cifar(root, corrupt=None):
  os.makedirs(root, exist_ok=True)
  rng = onp.random.default_rng(0)
  records = {}
  for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    recs = [cifar_record(int(rng.integers(10)),
                         lambda i, j, r=rng.integers(256, size=(32, 32, 3)): r[i, j])
            for _ in range(2)]
    records[f] = recs
    write(os.path.join(root, f), b"".join(recs))
  return str(root), records


def test_cifar10_reads_binary_batches_as_lra_grey_levels(tmp_path):
  root, records = write_cifar(tmp_path / "cifar-10-batches-bin")
  special = {(0, 0): (255, 255, 255), (0, 1): (0, 0, 0), (0, 2): (255, 0, 0),
             (31, 31): (10, 20, 30), (5, 7): (0, 0, 255)}
  rec = cifar_record(7, lambda i, j: special.get((i, j), (1, 2, 3)))
  write(os.path.join(root, "test_batch.bin"), rec + records["test_batch.bin"][1])
  task = make("cifar10", data_dir=root, valid_size=2)
  assert task.io.length == 1024 and task.io.input_vocab == 256
  test = onp.asarray(task.data("test")["inputs"])
  assert test.shape == (2, 1024)
  # Hand-computed tf.image.rgb_to_grayscale: floor(255.5 * sum(w * c / 255)).
  assert test[0, 0] == 255 and test[0, 1] == 0 and test[0, 2] == 76
  assert test[0, 31 * 32 + 31] == 18 and test[0, 5 * 32 + 7] == 29
  assert test[0, 3] == 1        # (1, 2, 3) -> 1.88
  assert onp.asarray(task.data("test")["labels"]).tolist() == [7, records["test_batch.bin"][1][0]]
  # Every pixel of every record, from the file's bytes (R, G, B planes).
  def expected(record):
    r, g, b = (onp.frombuffer(record[1 + 1024 * c:1 + 1024 * (c + 1)], onp.uint8)
               .astype(onp.float32) / onp.float32(255) for c in range(3))
    value = (onp.float32(0.2989) * r + onp.float32(0.5870) * g
             + onp.float32(0.1140) * b) * onp.float32(255.5)
    return value.astype(onp.uint8)
  train = onp.asarray(task.data("train")["inputs"])
  in_order = [r for i in range(1, 6) for r in records[f"data_batch_{i}.bin"]]
  assert train.shape == (8, 1024)
  for row, record in zip(train, in_order[:8]):
    assert onp.abs(row.astype(int) - expected(record).astype(int)).max() <= 1
    assert (row == expected(record)).mean() > 0.99
  valid_labels = onp.asarray(task.data("eval")["labels"]).tolist()
  assert valid_labels == [r[0] for r in records["data_batch_5.bin"]]   # the last 10%
  batch = task.sample(task.data("train"), jax.random.key(0), 4)
  assert batch["inputs"].dtype == onp.int32 and batch["inputs"].shape == (4, 1024)


def test_cifar10_missing_and_malformed_files(tmp_path):
  root, _ = write_cifar(tmp_path / "c")
  os.remove(os.path.join(root, "test_batch.bin"))
  with pytest.raises(ConfigError, match=r"lacks test_batch.bin.*cifar-10-binary.tar.gz"):
    make("cifar10", data_dir=root)
  with pytest.raises(ConfigError, match="is not a directory"):
    make("cifar10", data_dir=str(tmp_path / "nowhere"))
  write(os.path.join(root, "test_batch.bin"), bytes(3072))
  with pytest.raises(ConfigError, match="not a positive multiple of 3073"):
    make("cifar10", data_dir=root, valid_size=2)
  write(os.path.join(root, "test_batch.bin"), bytes([12]) + bytes(3072))
  with pytest.raises(ConfigError, match="label 12"):
    make("cifar10", data_dir=root, valid_size=2)


# --- LRA Retrieval: AAN pairs, two towers ------------------------------------------------

AAN_ROWS = {
    "train": [b"1.0\tp1\tp2\tAttention is all\tWe cite \"attention\" here",
              b"0.0\tp3\tp4\tGraphs\tPar\xc3\xa9e et al. 2010"],
    "eval": [b"1.0\ta\tb\tShort\tA much longer second paper text"],
    "test": [b"0.0\tc\td\tx\ty", b"1.0\te\tf\tAbc\tDef"],
}


def write_aan(root, rows=AAN_ROWS):
  names = {"train": "new_aan_pairs.train.tsv", "eval": "new_aan_pairs.eval.tsv",
           "test": "new_aan_pairs.test.tsv"}
  for split, lines in rows.items():
    write(os.path.join(root, names[split]), b"\n".join(lines) + b"\n")
  return str(root)


def test_aan_reads_lra_pairs_as_two_byte_documents(tmp_path):
  root = write_aan(tmp_path / "tsv_data")
  task = make("aan", data_dir=root, max_length=10)
  assert task.io.length == 20 and task.io.pair and task.io.input_vocab == 257
  for split, lines in AAN_ROWS.items():
    data = task.data(split)
    expected = []
    for line in lines:
      _, _, _, text1, text2 = line.split(b"\t")
      expected.append(byte_row(text1, 10) + byte_row(text2, 10))
    assert onp.asarray(data["inputs"]).tolist() == expected, split
    assert onp.asarray(data["labels"]).tolist() == [
        int(float(line.split(b"\t")[0])) for line in lines]
  right = make("aan", data_dir=root, max_length=10, padding="right")
  assert onp.asarray(right.data("test")["inputs"])[0].tolist() == (
      byte_row(b"x", 10, "right") + byte_row(b"y", 10, "right"))
  batch = task.sample(task.data("train"), jax.random.key(0), 3)
  assert batch["inputs"].shape == (3, 20) and batch["targets"].shape == (3, 20)


def test_aan_missing_and_malformed_files(tmp_path):
  with pytest.raises(ConfigError, match=r"new_aan_pairs.train.tsv.*lra_release"):
    make("aan", data_dir=str(tmp_path / "nowhere"))
  rows = dict(AAN_ROWS, eval=[b"1.0\ta\tb\tonly four fields"])
  root = write_aan(tmp_path / "four", rows)
  with pytest.raises(ConfigError, match=r"eval.tsv, line 1: 4 tab-separated fields"):
    make("aan", data_dir=root)
  rows = dict(AAN_ROWS, test=[b"0.0\tc\td\tx\ty", b"yes\te\tf\tAbc\tDef"])
  root = write_aan(tmp_path / "label", rows)
  with pytest.raises(ConfigError, match=r"test.tsv, line 2: label b'yes'"):
    make("aan", data_dir=root)
  root = write_aan(tmp_path / "partial")
  os.remove(os.path.join(root, "new_aan_pairs.test.tsv"))
  with pytest.raises(ConfigError, match="lacks new_aan_pairs.test.tsv"):
    make("aan", data_dir=root)


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["lstm", "transformer"])
def test_two_tower_encodes_each_document_separately(tmp_path, model_name):
  from seqjax import models  # pylint: disable=import-outside-toplevel
  task = make("aan", data_dir=write_aan(tmp_path / "tsv"), max_length=6)
  model = models.build(models.model_config(model_name, width=8), task.io)
  pairs = jax.random.randint(jax.random.key(0), (3, 12), 1, 257)
  params = jax.jit(model.init)(jax.random.key(1), pairs)["params"]
  out = onp.asarray(jax.jit(model.apply)({"params": params}, pairs))
  assert out.shape == (3, 12, 2)
  onp.testing.assert_allclose(out, onp.broadcast_to(out[:, -1:], out.shape))
  # Reference from the definition: u, v from the encoder alone, then the MLP.
  encoder = jax.jit(model.encoder.apply)
  encode = lambda docs: onp.asarray(encoder({"params": params["encoder"]},
                                            docs))[:, -1]
  u, v = encode(pairs[:, :6]), encode(pairs[:, 6:])
  x = onp.concatenate([u, v, u * v, u - v], axis=-1)
  for name in ("mlp", "mlp2"):
    x = onp.maximum(x @ onp.asarray(params[name]["kernel"])
                    + onp.asarray(params[name]["bias"]), 0)
  logits = x @ onp.asarray(params["logits"]["kernel"]) + onp.asarray(
      params["logits"]["bias"])
  onp.testing.assert_allclose(out[:, -1], logits, rtol=1e-5, atol=1e-5)
  assert params["mlp"]["kernel"].shape == (32, 32)      # 4 * width -> mlp_dim


def aan_window_config(tmp_path, **train_values):
  """A one-layer window model on tiny AAN files written under tmp_path/t."""
  from seqjax import models  # pylint: disable=import-outside-toplevel
  return helpers.run_config(
      tasks.task_config("aan", data_dir=write_aan(tmp_path / "t"), max_length=6),
      models.model_config("window", width=8, num_layers=1), **train_values)


@pytest.mark.slow
def test_two_tower_trains_one_step(tmp_path):
  config = aan_window_config(tmp_path, batch_size=4, steps=2, warmup_steps=1)
  exp = experiment.build(config)
  state = experiment.init_state(exp)
  state, metrics = stepping.make_train_step(exp)(
      state, stepping.make_batch_fn(exp, experiment.TRAIN)(0))
  assert onp.isfinite(float(metrics["loss"])) and int(state.step) == 1


# --- experiments: lra.py and text.py --------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_lra_sweep_runs_generated_tasks_and_file_tasks_given_their_folders(tmp_path):
  from seqjax import sweep  # pylint: disable=import-outside-toplevel
  lra = helpers.load_experiment("lra")
  quick = lra.get_sweep("quick")
  assert {t["arg.task"] for t in quick} == {"pathfinder", "listops"}
  dirs = dict(imdb_dir=write_imdb(tmp_path / "aclImdb"),
              aan_dir=write_aan(tmp_path / "tsv"),
              cifar10_dir=write_cifar(tmp_path / "cifar")[0])
  arg = "quick," + ",".join(f"{k}={v}" for k, v in dirs.items())
  trials = lra.get_sweep(arg)
  assert {t["arg.task"] for t in trials} == {"pathfinder", "listops", "imdb",
                                             "aan", "cifar10"}
  for trial in trials:
    if trial["arg.task"] in ("imdb", "aan", "cifar10"):
      config = sweep.trial_config(lra, arg, trial)
      if "valid_size" in config.task:  # the tiny files hold few examples
        config.task.valid_size = 2 if trial["arg.task"] == "cifar10" else 1
      exp = experiment.build(config)
      assert exp.task.io.kind == "classify"
  full = lra.get_config("task=listops")
  assert (full.model.width, full.model.num_layers, full.model.num_heads) == (512, 6, 8)
  assert full.task.max_length == 2000
  assert lra.get_config("task=pathx").task.resolution == 128
  with pytest.raises(ConfigError, match="task.data_dir is empty.*data_batch_1.bin"):
    experiment.build(lra.get_config("task=cifar10"))
  with pytest.raises(ConfigError, match="arg.task='mnist'"):
    lra.get_config("task=mnist")


@pytest.mark.parametrize("name,arg,shrink", [
    ("lra", "quick,task=pathfinder,model=window",
     dict(num_train=32, num_valid=8, num_test=8)),
    ("text", "quick,model=window", dict(length=16)),
])
@pytest.mark.slow
def test_quick_configs_run_end_to_end(tmp_path, name, arg, shrink):
  config = helpers.load_experiment(name).get_config(arg)
  config.task.update(shrink)
  config.model.update(width=8, num_layers=1)
  config.train.update(steps=2, batch_size=4, warmup_steps=1, log_every=1,
                      eval_every=2, eval_batches=1, checkpoint_every=2)
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), progress=False)
  assert summary["status"] == "completed" and summary["step"] == 2
  task = experiment.build(config).task
  assert task.metric in summary["test"] and summary["chance"] == task.chance


@pytest.mark.slow
def test_task_time_benchmark_covers_the_lra_tasks(tmp_path):
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  out = subprocess.run(
      [sys.executable, "-m", "benchmarks.task_time", "--quick", "--model=window",
       "--tasks=lra:aan,lra:cifar10", "--batch_size=2",
       "--task_args=valid_size=256,max_length=32",
       f"--lra_files={tmp_path / 'files'}", "--steps=1"],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
      env=dict(os.environ, SEQJAX_DATA=str(tmp_path / "data")))
  rows = [json.loads(line) for line in out.stdout.splitlines()
          if line.startswith("{")]
  assert [r["task"] for r in rows] == ["lra:aan", "lra:cifar10"]
  assert [r["length"] for r in rows] == [64, 1024]
  for row in rows:
    assert row["batch"] == 2 and row["generator_ms"] > 0 and row["step_ms"] > 0


def test_report_reads_the_runs_mode_and_needs_no_length_axis(tmp_path):
  """A sweep over tasks and models only (as lra.py's), on a metric to minimise
  (text's bits per byte): the report picks the learning rate with the lowest
  validation value, writes its table, and draws no length plot."""
  from seqjax import report  # pylint: disable=import-outside-toplevel
  for lr, valid, test in [(1e-3, 2.0, 2.1), (3e-3, 1.5, 1.6)]:
    helpers.fake_trial(str(tmp_path), f"model=lstm,train.learning_rate={lr}",
                       {"arg.model": "lstm", "train.learning_rate": lr}, dict(
                           metric="bits_per_byte", mode="min", chance=8.0,
                           final={"bits_per_byte": valid},
                           test={"bits_per_byte": test}, steps_per_s=10.0,
                           peak_memory_mb=1.0, step_temp_mb=1.0, num_params=5),
                       task="text")
  out = report.write(str(tmp_path))
  (point,) = out["text"]["points"]
  assert out["text"]["mode"] == "min"
  assert point["learning_rate"] == 3e-3 and point["test_mean"] == 1.6
  text = open(os.path.join(tmp_path, "report.md")).read()
  assert "## text: bits_per_byte (lower is better; chance 8)\n" in text
  assert not [f for f in os.listdir(tmp_path) if f.endswith(".png")]


def test_diagnostics_refuse_pair_tasks_clearly(tmp_path):
  from seqjax import diagnostics, run_files  # pylint: disable=import-outside-toplevel
  config = aan_window_config(tmp_path, batch_size=4, steps=2, warmup_steps=1,
                             eval_every=2, checkpoint_every=2, eval_batches=1)
  workdir = str(tmp_path / "run")
  run_files.init(workdir, config)  # a run's directory as it starts: its config
  with pytest.raises(ConfigError, match="pair task"):
    diagnostics.run(workdir)
