"""Text to image with a decoder-only transformer, in the manner of DALL-E (Ramesh
et al. 2021, "Zero-Shot Text-to-Image Generation"), at the scale of scikit-learn's
8x8 handwritten digits (`sklearn.datasets.load_digits`, 1,797 images, no download;
the train / validation / test split of `sequential_digits`).

One sequence per example, text then image, modelled left to right:
  [caption words, right-padded with <pad> to C] [<sep>] [64 image tokens]
Captions name the label in one of `len(TEMPLATES)` phrasings, with the digit as a
word or a numeral ("a handwritten seven", "the digit 7", "seven", ...), drawn
uniformly per example. The word-level vocabulary is a pure function of this file
(`VOCAB`); it is also the field `vocabulary`, so a run's config.json holds it and
a run refuses code whose vocabulary differs. Image tokens, two ways:
  pixels (`tokenizer_run` empty): the T = 64 pixels in row-major order quantised to
      `grey_levels` levels (pixel p in 0..16 -> floor(p (G-1) / 16 + 1/2));
  learned (`tokenizer_run` = a `vqvae_digits` run, experiments/vqvae_digits.py):
      T = 16 codes, one per 2x2 patch of the quantised image (`seqjax.dvae_codec`,
      DALL-E's dVAE at this scale), K = the run's model.codebook_size; decoding
      codes gives a quantised image. The tokenizer run must have the same
      grey_levels and split.
Image token g has id `len(VOCAB) + g`.

Training (IOSpec kind "lm"): inputs are the sequence without its last token,
targets the sequence without its first; L = C + T. The loss weight (`mask`) is 1
on image targets and `text_loss_weight` on the other non-pad targets (the caption
words after the first, and <sep>; DALL-E weighted text 1/8). Headline metric:
`image_nll`, the mean cross-entropy of the image tokens (nats per token; mode
min), chance ln(G) (or ln(K)), the uniform guess. Whether generated images show the
captioned digit is judged outside training, by an independent classifier
(`seqjax.digit_eval`, `launch.py --mode=generate`).

C is the length of the longest caption (5 words).
"""

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as onp

from seqjax import checkpoints
from seqjax import dvae_codec
from seqjax import run_files
from seqjax.errors import ConfigError
from seqjax.tasks import base
from seqjax.tasks import sequential_digits
from seqjax.tasks import vqvae_digits

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
         "nine")
TEMPLATES = ("{}", "the digit {}", "the number {}", "a handwritten {}",
             "a handwritten digit {}", "a picture of a {}")
PAD, SEP = "<pad>", "<sep>"
VOCAB = (PAD, SEP) + tuple(sorted(
    {w for t in TEMPLATES for w in t.format("").split()} | set(NAMES)
    | {str(d) for d in range(10)}))
WORD_ID = {w: i for i, w in enumerate(VOCAB)}
CAPTION_LENGTH = max(len(t.split()) for t in TEMPLATES)  # C
IMAGE_SIDE = sequential_digits.IMAGE
SPLIT_FIELDS = ("grey_levels", "split_seed", "valid_size", "test_size")


def captions(digit: int) -> list[str]:
  """Every phrasing of the caption of `digit`: each template, word and numeral."""
  return [t.format(w) for t in TEMPLATES for w in (NAMES[digit], str(digit))]


def words(text: str) -> list[str]:
  return text.lower().split()


def unknown_words(text: str) -> list[str]:
  return [w for w in words(text) if w not in WORD_ID]


def encode_caption(text: str) -> onp.ndarray:
  """Caption -> [C] int32 word ids, right-padded with <pad>.

  Raises ConfigError naming words outside VOCAB, or a caption longer than C.
  """
  unknown = unknown_words(text)
  if unknown:
    raise ConfigError(
        f"The prompt {text!r} has words outside the task's vocabulary: "
        f"{', '.join(repr(w) for w in unknown)}. Known words: "
        f"{', '.join(w for w in VOCAB if w not in (PAD, SEP))}.")
  ids = [WORD_ID[w] for w in words(text)]
  if not ids or len(ids) > CAPTION_LENGTH:
    raise ConfigError(f"The prompt {text!r} has {len(ids)} words; a caption "
                      f"has 1 to {CAPTION_LENGTH}.")
  return onp.array(ids + [WORD_ID[PAD]] * (CAPTION_LENGTH - len(ids)), onp.int32)


def decode_caption(ids_C) -> str:
  return " ".join(VOCAB[i] for i in onp.asarray(ids_C) if VOCAB[i] != PAD)


def caption_digit(text: str) -> int | None:
  """The digit a caption names (as a word or a numeral), or None if it names
  none or several."""
  named = {NAMES.index(w) if w in NAMES else int(w) for w in words(text)
           if w in NAMES or (w.isdigit() and len(w) == 1)}
  return named.pop() if len(named) == 1 else None


@functools.lru_cache(maxsize=1)
def caption_table() -> onp.ndarray:
  """[10, len(TEMPLATES) * 2, C] int32: every caption of every digit, encoded."""
  return onp.stack([onp.stack([encode_caption(c) for c in captions(d)])
                    for d in range(10)])


@functools.lru_cache(maxsize=4)
def tokenizer_config(run: str) -> dict:
  """The config of tokenizer run `run` (a `vqvae_digits` run), checked."""
  config = run_files.read_json(os.path.join(run, "config.json"))
  if config is None or config["task"]["name"] != "vqvae_digits":
    raise ConfigError(
        f"task.tokenizer_run={run!r} is not a vqvae_digits run (no config.json "
        "of that task); train one with experiments/vqvae_digits.py, or leave it "
        "empty for pixel tokens.")
  return config


@functools.lru_cache(maxsize=4)
def tokenizer_params(run: str):
  """The tokenizer's parameters, restored once; concrete even when first asked
  for inside a jitted function (the task's data are computed eagerly)."""
  with jax.ensure_compile_time_eval():
    return jax.device_get(checkpoints.load_params(run))


@dataclasses.dataclass(frozen=True)
class TextToImage:
  """Attributes are the `config.task` fields of `text_to_image`."""
  grey_levels: int = 4           # G, grey levels of a pixel
  tokenizer_run: str = ""        # a vqvae_digits run: learned image tokens;
                                 # empty: quantised pixels
  text_loss_weight: float = 0.0  # loss weight of text targets (DALL-E: 1/8)
  split_seed: int = 0            # seed of the fixed train / validation / test split
  valid_size: int = 180          # validation images
  test_size: int = 360           # test images
  vocabulary: tuple = VOCAB      # the word ids, stored with the run's config so
                                 # that a run refuses code with other words

  loss = "xent"
  metric = "image_nll"           # cross-entropy of image tokens, nats per token
  mode = "min"
  solved_level = None            # no threshold; see `seqjax.digit_eval`

  def __post_init__(self):
    object.__setattr__(self, "vocabulary", tuple(self.vocabulary))
    if self.vocabulary != VOCAB:
      raise ConfigError(
          f"task.vocabulary={list(self.vocabulary)} is not this code's caption "
          f"vocabulary {list(VOCAB)}; a run keeps the vocabulary it was trained "
          "with, so sample it with the code of its time.")
    vqvae_digits.check_grey_levels(self.grey_levels)
    if not 0 <= self.text_loss_weight <= 1:
      raise ConfigError(f"task.text_loss_weight={self.text_loss_weight!r} must "
                        "be in [0, 1] (DALL-E used 1/8).")
    sequential_digits.SequentialDigits(split_seed=self.split_seed,
                                       valid_size=self.valid_size,
                                       test_size=self.test_size)  # validates
    if self.tokenizer_run:
      theirs = tokenizer_config(self.tokenizer_run)["task"]
      differ = [f"{k} ({theirs[k]!r} there, {getattr(self, k)!r} here)"
                for k in SPLIT_FIELDS if theirs[k] != getattr(self, k)]
      if differ:
        raise ConfigError(
            f"task.tokenizer_run={self.tokenizer_run!r} was trained with other "
            f"task settings: {', '.join(differ)}; they must match.")
      tokenizer_params(self.tokenizer_run)  # restored here, outside any trace

  @property
  def image_offset(self) -> int:
    """Id of image token 0; ids below are words."""
    return len(VOCAB)

  @property
  def image_length(self) -> int:
    """T, image tokens per image."""
    return dvae_codec.NUM_PATCHES if self.tokenizer_run else IMAGE_SIDE ** 2

  @property
  def image_vocab(self) -> int:
    """G pixel levels, or K codes of the tokenizer."""
    if self.tokenizer_run:
      return tokenizer_config(self.tokenizer_run)["model"]["codebook_size"]
    return self.grey_levels

  @property
  def vocab_size(self) -> int:
    return len(VOCAB) + self.image_vocab

  @property
  def io(self) -> base.IOSpec:
    return base.lm_io(CAPTION_LENGTH + self.image_length, self.vocab_size)

  @property
  def chance(self) -> float:
    return math.log(self.image_vocab)

  # --- image tokens ------------------------------------------------------------

  def image_tokens(self, images_NxYxZ) -> onp.ndarray:
    """Images in [0, 1] -> tokens [N, T] int32 in 0..G-1 (or 0..K-1)."""
    levels = vqvae_digits.quantise(images_NxYxZ, self.grey_levels)
    if not self.tokenizer_run:
      return levels.reshape(levels.shape[0], -1)
    with jax.ensure_compile_time_eval():
      return onp.asarray(dvae_codec.encode(tokenizer_params(self.tokenizer_run),
                                           dvae_codec.patches(levels),
                                           self.grey_levels))

  def token_images(self, tokens_NxT) -> onp.ndarray:
    """Tokens [N, T] -> images [N, 8, 8] float32 in [0, 1], on the G levels."""
    tokens_NxT = onp.asarray(tokens_NxT)
    if self.tokenizer_run:
      with jax.ensure_compile_time_eval():
        levels = dvae_codec.unpatch(onp.asarray(dvae_codec.decode(
            tokenizer_params(self.tokenizer_run), tokens_NxT)))
    else:
      levels = tokens_NxT.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return (levels / (self.grey_levels - 1)).astype(onp.float32)

  def images(self, split: str) -> tuple[onp.ndarray, onp.ndarray]:
    """Real images of `split`, quantised to G levels: ([N, 8, 8], labels [N])."""
    images, labels = sequential_digits.load_splits(
        self.split_seed, self.valid_size, self.test_size)[split]
    levels = vqvae_digits.quantise(images, self.grey_levels)
    return (levels / (self.grey_levels - 1)).astype(onp.float32), labels

  # --- sequences ---------------------------------------------------------------

  def prompt(self, caption_ids_BxC):
    """[B, C] caption ids -> the prompt [B, C + 1]: caption then <sep>."""
    caption_ids_BxC = jnp.asarray(caption_ids_BxC, jnp.int32)
    sep = jnp.full((caption_ids_BxC.shape[0], 1), WORD_ID[SEP], jnp.int32)
    return jnp.concatenate([caption_ids_BxC, sep], axis=1)

  def data(self, split: str) -> dict:
    """The examples of `split` ("train", "eval" or "test") as device arrays."""
    images, labels = sequential_digits.load_splits(
        self.split_seed, self.valid_size, self.test_size)[split]
    return dict(image_tokens=jnp.asarray(self.image_tokens(images)),
                labels=jnp.asarray(labels))

  def sample(self, data: dict, key, batch_size: int):
    """A batch: examples uniform with replacement, a caption phrasing uniform."""
    k_index, k_caption = jax.random.split(key)
    index_B = jax.random.randint(k_index, (batch_size,), 0,
                                 data["labels"].shape[0])
    table = jnp.asarray(caption_table())
    variant_B = jax.random.randint(k_caption, (batch_size,), 0, table.shape[1])
    caption_BxC = table[data["labels"][index_B], variant_B]
    sequence = jnp.concatenate(
        [self.prompt(caption_BxC),
         data["image_tokens"][index_B] + self.image_offset], axis=1)
    targets = sequence[:, 1:]
    image_L = self.image_positions()
    text_weight = jnp.where(targets == WORD_ID[PAD], 0.0, self.text_loss_weight)
    mask = jnp.where(image_L[None, :], 1.0, text_weight).astype(jnp.float32)
    return dict(inputs=sequence[:, :-1], targets=targets, mask=mask)

  def image_positions(self):
    """[L] bool: the target positions that are image tokens."""
    return jnp.arange(self.io.length) >= CAPTION_LENGTH

  def batch(self, key, batch_size: int):
    return self.sample(self.data("train"), key, batch_size)

  def metrics(self, logits_BxLxV, batch):
    image_BxL = jnp.broadcast_to(self.image_positions()[None, :],
                                 batch["targets"].shape).astype(jnp.float32)
    return dict(
        loss=base.cross_entropy(logits_BxLxV, batch["targets"], batch["mask"]),
        image_nll=base.cross_entropy(logits_BxLxV, batch["targets"], image_BxL),
        image_accuracy=base.accuracy(logits_BxLxV, batch["targets"], image_BxL))
