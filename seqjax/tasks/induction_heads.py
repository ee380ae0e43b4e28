"""Induction heads (Olsson et al. 2022, "In-context Learning and Induction
Heads"), in the synthetic form of Gu & Dao 2023, "Mamba", section 4.1.2.

Tokens: 0..vocab-2 are ordinary tokens, vocab-1 is the special token. Input
(length L): uniform ordinary tokens, except that the special token appears once
at a uniform position p in [0, L-3], followed by its value (the ordinary token at
p + 1), and once more at the last position L-1. The model must predict the value
at L-1; only that position is scored. The dependency length is L-1-p, up to L-1.

The Mamba paper trains at L = 256 with vocabulary 16 and evaluates at longer
lengths (2^6 to 2^20): `eval_lengths` adds one evaluation set per length, logged
as splits `eval_len<N>` during training and `test_len<N>` at the end.
Chance: accuracy 1 / (vocab - 1).
"""

import dataclasses

import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base


@dataclasses.dataclass(frozen=True)
class InductionHeads:
  """Attributes are the `config.task` fields of `induction_heads`."""
  length: int = 256                     # L: training length
  vocab: int = 16                       # ordinary tokens plus the special token
  eval_lengths: tuple = (512, 1024, 4096)  # extra evaluation lengths (extrapolation)

  loss = "xent"
  metric = "accuracy"                   # accuracy at the last position
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    object.__setattr__(self, "eval_lengths", tuple(self.eval_lengths))
    configs.check_positive("task", length=self.length, vocab=self.vocab)
    if self.length < 3 or self.vocab < 3:
      raise ConfigError(
          f"task.length={self.length} and task.vocab={self.vocab} must both be "
          "at least 3.")
    for n in self.eval_lengths:
      if not isinstance(n, int) or n < 3:
        raise ConfigError(
            f"task.eval_lengths={self.eval_lengths}: every length must be an "
            "integer of at least 3.")

  @property
  def io(self) -> base.IOSpec:
    return base.lm_io(self.length, self.vocab,
                      eval_lengths=tuple(self.eval_lengths))

  @property
  def chance(self) -> float:
    return 1.0 / (self.vocab - 1)

  @property
  def eval_sets(self) -> dict:
    """Extra evaluation sets: the same task at each of `eval_lengths`."""
    return {f"len{n}": dataclasses.replace(self, length=n, eval_lengths=())
            for n in self.eval_lengths}

  def batch(self, key, batch_size: int):
    length, special = self.length, self.vocab - 1
    k_tokens, k_position = jax.random.split(key)
    tokens_BxL = jax.random.randint(k_tokens, (batch_size, length), 0, special,
                                    dtype=jnp.int32)
    position_B = jax.random.randint(k_position, (batch_size,), 0, length - 2)
    positions_1xL = jnp.arange(length)[None, :]
    is_special_BxL = ((positions_1xL == position_B[:, None]) |
                      (positions_1xL == length - 1))
    inputs = jnp.where(is_special_BxL, special, tokens_BxL)
    value_B = jnp.take_along_axis(tokens_BxL, position_B[:, None] + 1, axis=1)[:, 0]
    mask = base.last_position_mask(batch_size, length)
    targets = jnp.where(mask > 0, value_B[:, None], 0).astype(jnp.int32)
    return dict(inputs=inputs, targets=targets, mask=mask,
                positions=base.last_positions(batch_size, length, 1))

  def metrics(self, logits_BxLxV, batch):
    return base.scored_metrics(logits_BxLxV, batch)
