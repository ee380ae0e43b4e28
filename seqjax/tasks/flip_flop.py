"""Flip-flop language modelling (Liu, Ash, Goel, Krishnamurthy & Zhang 2023,
"Exposing Attention Glitches with Flip-Flop Language Modeling").

A sequence of N instructions, each followed by a bit: write (w), read (r) or
ignore (i). Instructions are drawn with probabilities (p_w, p_r, p_i), p_w = p_r
= (1 - p_i) / 2 (the paper's FFL(p_i)), except that the first is always a write
and the last always a read. Bits after writes and ignores are uniform; the bit
after a read equals the bit of the most recent write. Sequences are read as a
language model reads them, token by token (length L = 2N).

Tokens: 0 w, 1 r, 2 i, 3 bit 0, 4 bit 1. Inputs are the tokens, targets the next
token. `score="reads"` (the default) scores only the deterministic predictions:
at each read instruction, the bit that follows. `score="all"` puts the loss on
every next-token prediction (the random ones included); the headline accuracy
is always measured at the reads.

Training setting: length 256 (here N = 128 instructions, 256 tokens; if the
paper's length counts instructions, set N = 256) with p_i = 0.8. The paper also
evaluates on dense (p_i = 0.1) and sparse (p_i = 0.98) sequences: logged as splits
`eval_dense` / `eval_sparse` during training and `test_dense` / `test_sparse`
at the end. Chance: accuracy 0.5 at the reads.
"""

import dataclasses

import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base

WRITE, READ, IGNORE, BIT0 = 0, 1, 2, 3
DENSE_P_IGNORE = 0.1
SPARSE_P_IGNORE = 0.98


@dataclasses.dataclass(frozen=True)
class FlipFlop:
  """Attributes are the `config.task` fields of `flip_flop`."""
  num_instructions: int = 128  # N: instruction-bit pairs, sequence length 2N
  p_ignore: float = 0.8        # p_i; writes and reads share the rest equally
  score: str = "reads"         # loss at the "reads" only, or at "all" positions

  loss = "xent"
  metric = "accuracy"          # accuracy of the bit predicted at each read
  mode = "max"
  chance = 0.5
  solved_level = 1.0

  def __post_init__(self):
    configs.check_positive("task", num_instructions=self.num_instructions)
    if self.num_instructions < 2:
      raise ConfigError(
          f"task.num_instructions={self.num_instructions} must be at least 2 "
          "(a first write and a last read).")
    configs.check_probability("task", p_ignore=self.p_ignore)
    configs.check_choice("task", "score", self.score, ("reads", "all"))

  @property
  def length(self) -> int:
    return 2 * self.num_instructions

  @property
  def io(self) -> base.IOSpec:
    return base.lm_io(self.length, 5)

  @property
  def eval_sets(self) -> dict:
    """The paper's dense and sparse evaluation sequences."""
    return {"dense": dataclasses.replace(self, p_ignore=DENSE_P_IGNORE),
            "sparse": dataclasses.replace(self, p_ignore=SPARSE_P_IGNORE)}

  def batch(self, key, batch_size: int):
    n = self.num_instructions
    k_ops, k_bits = jax.random.split(key)
    p_rw = (1.0 - self.p_ignore) / 2
    logits = jnp.log(jnp.array([p_rw, p_rw, self.p_ignore]))
    ops_BxN = jax.random.categorical(k_ops, logits, shape=(batch_size, n))
    ops_BxN = ops_BxN.at[:, 0].set(WRITE).at[:, -1].set(READ).astype(jnp.int32)
    random_bits_BxN = jax.random.bernoulli(k_bits, 0.5, (batch_size, n)).astype(
        jnp.int32)
    tokens_BxL = self.tokens(ops_BxN, random_bits_BxN)
    targets = jnp.concatenate(
        [tokens_BxL[:, 1:], jnp.zeros((batch_size, 1), jnp.int32)], axis=1)
    reads_BxL = self.read_positions(tokens_BxL)
    if self.score == "reads":
      mask = reads_BxL
    else:
      mask = jnp.ones_like(reads_BxL).at[:, -1].set(0.0)
    return dict(inputs=tokens_BxL, targets=targets, mask=mask)

  @staticmethod
  def tokens(ops_BxN, random_bits_BxN):
    """Instructions [B, N] and drawn bits [B, N] -> the token sequence [B, 2N].

    The bit after a read is replaced by the bit of the most recent write (the
    first instruction must be a write).
    """
    n = ops_BxN.shape[1]
    index_1xN = jnp.arange(n)[None, :]
    last_write_BxN = jax.lax.cummax(jnp.where(ops_BxN == WRITE, index_1xN, -1), axis=1)
    written_BxN = jnp.take_along_axis(random_bits_BxN, last_write_BxN, axis=1)
    bits_BxN = jnp.where(ops_BxN == READ, written_BxN, random_bits_BxN)
    return jnp.stack([ops_BxN, BIT0 + bits_BxN], axis=-1).reshape(-1, 2 * n)

  def read_positions(self, tokens_BxL):
    """[B, L] float32: 1 at the read instructions, whose next token is scored."""
    return (tokens_BxL == READ).astype(jnp.float32)  # bits are 3 or 4, never READ

  def metrics(self, logits_BxLxV, batch):
    reads = self.read_positions(batch["inputs"])
    return dict(
        loss=base.cross_entropy(logits_BxLxV, batch["targets"], batch["mask"]),
        accuracy=base.accuracy(logits_BxLxV, batch["targets"], reads),
        sequence_accuracy=base.sequence_accuracy(
            logits_BxLxV, batch["targets"], reads))
