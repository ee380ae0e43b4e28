"""Copy memory (Hochreiter & Schmidhuber 1997), in the form of Arjovsky, Shah &
Bengio 2016, "Unitary Evolution Recurrent Neural Networks".

Tokens: 0 is the blank, 1..alphabet are the symbols, alphabet + 1 the delimiter.
Input (length delay + 2k): k symbols, delay - 1 blanks, the delimiter, k blanks.
Target: delay + k blanks, then the k symbols.

The memoryless baseline (the paper's, 10 log 8 / (T + 20) at k = 10 symbols from
8 categories and input length T + 20): a model that ignores the symbols but
learns everything else predicts the blank with certainty at the delay + k
positions before the recall (their targets are blanks, a function of the
position alone: cross-entropy 0) and the uniform distribution over the
`alphabet` symbols at the k recall positions (each a uniform draw: cross-entropy
log(alphabet)). The loss is the mean over the positions `score` weights: with
`score="all"`, all L = delay + 2k of them, k log(alphabet) / (delay + 2k), which
is the paper's formula at its T = delay (its input length T + 20 is ours at
k = 10); with `score="recall"`, the k recall positions only, log(alphabet). Its
accuracy at the recall positions is the chance level 1 / alphabet.
Letters, beyond the legend in seqjax.interfaces: M = k, the symbols to copy.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.tasks import base


@dataclasses.dataclass(frozen=True)
class CopyMemory:
  """Attributes are the `config.task` fields of `copy_memory`."""
  delay: int = 100        # T: blanks between the last symbol and the delimiter, plus one
  num_symbols: int = 10   # k: symbols to remember
  alphabet: int = 8       # n: categories the symbols are drawn from
  score: str = "all"      # loss on "all" positions (the paper) or only the "recall" ones

  loss = "xent"
  metric = "accuracy"     # accuracy at the k recall positions
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_positive("task", delay=self.delay,
                           num_symbols=self.num_symbols, alphabet=self.alphabet)
    configs.check_choice("task", "score", self.score, ("all", "recall"))

  @property
  def length(self) -> int:
    return self.delay + 2 * self.num_symbols

  @property
  def io(self) -> base.IOSpec:
    return base.lm_io(self.length, self.alphabet + 2)

  @property
  def chance(self) -> float:
    return 1.0 / self.alphabet

  @property
  def baseline_loss(self) -> float:
    """Cross-entropy of the memoryless strategy over the scored positions (see
    the module docstring)."""
    if self.score == "recall":
      return math.log(self.alphabet)
    return self.num_symbols * math.log(self.alphabet) / self.length

  @property
  def baselines(self) -> dict:
    return {"memoryless": dict(
        value=self.baseline_loss, metric="loss",
        what="blanks where the target is a blank, a uniform guess among the "
             "symbols at the recall positions (Arjovsky et al. 2016)")}

  def batch(self, key, batch_size: int):
    k, length = self.num_symbols, self.length
    symbols_BxM = jax.random.randint(
        key, (batch_size, k), 1, self.alphabet + 1, dtype=jnp.int32)
    blanks = jnp.zeros((batch_size, self.delay - 1), jnp.int32)
    delimiter = jnp.full((batch_size, 1), self.alphabet + 1, jnp.int32)
    inputs = jnp.concatenate(
        [symbols_BxM, blanks, delimiter, jnp.zeros_like(symbols_BxM)], axis=1)
    targets = jnp.concatenate(
        [jnp.zeros((batch_size, self.delay + k), jnp.int32), symbols_BxM], axis=1)
    recall_L = jnp.arange(length) >= self.delay + k
    mask_L = jnp.ones(length) if self.score == "all" else recall_L
    batch = dict(inputs=inputs, targets=targets,
                 mask=jnp.broadcast_to(mask_L, (batch_size, length)).astype(jnp.float32))
    if self.score == "recall":  # only the recall positions are scored
      batch["positions"] = base.last_positions(batch_size, length, k)
    return batch

  def metrics(self, logits_BxLxV, batch):
    if self.score == "recall":  # the mask is the recall positions (or, gathered
      recall_BxL = batch["mask"]  # at `positions`, all ones)
    else:
      recall_BxL = jnp.broadcast_to(
          jnp.arange(self.length) >= self.delay + self.num_symbols,
          batch["targets"].shape).astype(jnp.float32)
    return dict(
        loss=base.cross_entropy(logits_BxLxV, batch["targets"], batch["mask"]),
        accuracy=base.accuracy(logits_BxLxV, batch["targets"], recall_BxL),
        sequence_accuracy=base.sequence_accuracy(
            logits_BxLxV, batch["targets"], recall_BxL),
    )
