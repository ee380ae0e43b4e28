"""The Long Range Arena tasks: Pathfinder labels checked by an independent flood
fill, determinism and disjoint splits of the generated data, the file loaders
on tiny files in the official formats (exact batches), and clear ConfigErrors
for missing or malformed files."""

import collections
import os

import jax
import numpy as onp
import pytest

from seqjax import tasks
from seqjax import train
from seqjax.errors import ConfigError

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


@pytest.mark.parametrize("resolution", [32, 64])
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
    count += 1
  assert count == 60
  assert 10 <= labels.sum() <= 50     # both labels occur, near-balanced
  # The markers of a negative are on different contours: they are not joined
  # even with links one pixel longer than the generator's clearance allows.
  neg = onp.nonzero(labels == 0)[0][0]
  assert tuple(markers[neg, 1]) not in flood_fill(
      images[neg], markers[neg, 0], task.link)


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
  exp = train.build(config)
  split_rows = {s: rows_of(exp.task.data(s)["inputs"])
                for s in ("train", "eval", "test")}
  assert [len(v) for v in split_rows.values()] == [60, 20, 20]  # no duplicates
  for stream, split in train.DATA_SPLITS.items():
    drawn = rows_of(train.make_batch_fn(exp, stream)(0)["inputs"])
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
