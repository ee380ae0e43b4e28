"""Selective copying (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces", section 3.1 and Table 1), generated as the reference
generator of state-spaces/s4 (`copying.py` with `variable=True`) does.

Tokens: 0 is the blank (the filler between tokens to copy), 1..vocab-2 are the
symbols, vocab-1 is the marker. Input (length L): a region of L - M positions,
blank except for M symbols at M distinct uniformly random positions (kept in
their order), then M markers. Target: at the i-th marker position, the i-th
symbol. Only those M positions are scored. Because the symbols may sit anywhere,
the spacing varies and the longest dependency is up to L - 1: a model must select
what to remember by content, not by time.

Paper setting: L = 4096, vocab 16, M = 16 (these defaults scale to it).
Letters of this file, beyond the legend in seqjax.interfaces: M the symbols to
copy, A = L - M the region before the markers.
Chance: accuracy 1 / (vocab - 2) for a model that ignores the input.
"""

import dataclasses

import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base


@dataclasses.dataclass(frozen=True)
class SelectiveCopy:
  """Attributes are the `config.task` fields of `selective_copy`."""
  length: int = 4096      # L: total input length (region of L - M, then M markers)
  num_tokens: int = 16    # M: symbols to copy
  vocab: int = 16         # input/output vocabulary, blank and marker included

  loss = "xent"
  metric = "accuracy"     # accuracy at the M marker positions
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_positive("task", length=self.length,
                           num_tokens=self.num_tokens, vocab=self.vocab)
    if self.vocab < 3:
      raise ConfigError(
          f"task.vocab={self.vocab} must be at least 3 (blank, a symbol, marker).")
    if self.length < 2 * self.num_tokens:
      raise ConfigError(
          f"task.length={self.length} must be at least 2 * task.num_tokens="
          f"{2 * self.num_tokens} (a region holding the symbols, then the markers).")

  @property
  def io(self) -> base.IOSpec:
    return base.lm_io(self.length, self.vocab)

  @property
  def chance(self) -> float:
    return 1.0 / (self.vocab - 2)

  def batch(self, key, batch_size: int):
    m, region = self.num_tokens, self.length - self.num_tokens
    k_symbols, k_positions = jax.random.split(key)
    symbols_BxM = jax.random.randint(
        k_symbols, (batch_size, m), 1, self.vocab - 1, dtype=jnp.int32)
    # M distinct positions: the M largest of i.i.d. uniforms, then in order.
    scores_BxA = jax.random.uniform(k_positions, (batch_size, region))
    positions_BxM = jnp.sort(jax.lax.top_k(scores_BxA, m)[1], axis=-1)
    rows_Bx1 = jnp.arange(batch_size)[:, None]
    region_BxA = jnp.zeros((batch_size, region), jnp.int32).at[
        rows_Bx1, positions_BxM].set(symbols_BxM)
    markers_BxM = jnp.full((batch_size, m), self.vocab - 1, jnp.int32)
    targets = jnp.concatenate(
        [jnp.zeros((batch_size, region), jnp.int32), symbols_BxM], axis=1)
    mask_L = jnp.arange(self.length) >= region
    return dict(inputs=jnp.concatenate([region_BxA, markers_BxM], axis=1),
                targets=targets,
                mask=jnp.broadcast_to(mask_L, targets.shape).astype(jnp.float32),
                positions=base.last_positions(batch_size, self.length, m))

  def metrics(self, logits_BxLxV, batch):
    return base.scored_metrics(logits_BxLxV, batch)
