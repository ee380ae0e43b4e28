"""Multi-query associative recall, MQAR (Arora et al. 2023, "Zoology: Measuring
and Improving Recall in Efficient Language Models"), generated as the reference
generator of HazyResearch/zoology (`multiquery_ar`) does.

Vocabulary V: keys come from [1, V/2), values from [V/2, V). Input (length L):
P key-value pairs (k_1 v_1 ... k_P v_P, each key at most once, each value at most
once), then a query region of L - 2P positions in which every key appears once
more, at even offsets 2g, where the gaps g are drawn without replacement from
[0, (L - 2P)/2) with probability proportional to g'^(a - 1), g' = g + 1 (a power
law: most queries come soon after the pairs, a few far away). The other
positions of the query region hold uniform random tokens from [0, V)
(`random_non_queries` of the reference). The model must predict the value of a
key at the position where that key is queried; only those P positions are scored.

The reference requires V > L, L even and 4P <= L; this class checks the same.
Zoology figure 2 grid: (L, P) in {(64, 4), (128, 8), (256, 16)}, V = 8192.
Chance: accuracy 1 / (V - V//2), the most frequent answer among uniform values;
a model that guesses among the P values in context gets 1/P (`context_guess`).
"""

import dataclasses

import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base


@dataclasses.dataclass(frozen=True)
class AssociativeRecall:
  """Attributes are the `config.task` fields of `associative_recall`."""
  length: int = 64        # L: input length
  num_pairs: int = 4      # P: key-value pairs, every key queried once
  vocab: int = 8192       # V: keys in [1, V/2), values in [V/2, V)
  power_a: float = 0.01   # a: query gaps drawn with probability ~ g^(a - 1)

  loss = "xent"
  metric = "accuracy"     # accuracy at the P query positions
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_positive("task", length=self.length, num_pairs=self.num_pairs,
                           vocab=self.vocab, power_a=self.power_a)
    problems = []
    if self.length % 2:
      problems.append(f"task.length={self.length} must be even")
    if self.vocab <= self.length:
      problems.append(f"task.vocab={self.vocab} must exceed task.length={self.length}")
    if 4 * self.num_pairs > self.length:
      problems.append(f"4 * task.num_pairs={4 * self.num_pairs} must be at most "
                      f"task.length={self.length}")
    if problems:
      raise ConfigError("; ".join(problems) + " (the Zoology generator's "
                                "conditions).")

  @property
  def io(self) -> base.IOSpec:
    return base.lm_io(self.length, self.vocab)

  @property
  def chance(self) -> float:
    return 1.0 / (self.vocab - self.vocab // 2)

  @property
  def context_guess(self) -> float:
    """Accuracy of guessing one of the P values present in the context."""
    return 1.0 / self.num_pairs

  @property
  def baselines(self) -> dict:
    return {"context_guess": dict(
        value=self.context_guess, metric="accuracy",
        what="guess one of the P values present in the context, uniformly")}

  def gap_probabilities(self):
    """p(g) for g in [0, space), the reference's power law."""
    space = (self.length - 2 * self.num_pairs) // 2
    p = self.power_a * jnp.arange(1, space + 1, dtype=jnp.float32) ** (
        self.power_a - 1)
    return p / jnp.sum(p)

  def batch(self, key, batch_size: int):
    p_pairs, v, length = self.num_pairs, self.vocab, self.length
    context = 2 * p_pairs
    half = v // 2
    k_keys, k_values, k_gaps, k_noise = jax.random.split(key, 4)

    def distinct(k, low, high):  # P distinct integers in [low, high) per row
      scores = jax.random.uniform(k, (batch_size, high - low))
      return jax.lax.top_k(scores, p_pairs)[1].astype(jnp.int32) + low

    keys_BxP = distinct(k_keys, 1, half)
    values_BxP = distinct(k_values, half, v)
    probs = self.gap_probabilities()
    gaps_BxP = jax.vmap(lambda k: jax.random.choice(
        k, probs.shape[0], (p_pairs,), replace=False, p=probs))(
            jax.random.split(k_gaps, batch_size))
    pairs_Bx2P = jnp.stack([keys_BxP, values_BxP], axis=-1).reshape(
        batch_size, context)
    query_pos_BxP = context + 2 * gaps_BxP
    rows_Bx1 = jnp.arange(batch_size)[:, None]
    noise_BxL = jax.random.randint(k_noise, (batch_size, length), 0, v,
                                   dtype=jnp.int32)
    inputs = noise_BxL.at[:, :context].set(pairs_Bx2P)
    inputs = inputs.at[rows_Bx1, query_pos_BxP].set(keys_BxP)
    targets = jnp.zeros((batch_size, length), jnp.int32).at[
        rows_Bx1, query_pos_BxP].set(values_BxP)
    mask = jnp.zeros((batch_size, length), jnp.float32).at[
        rows_Bx1, query_pos_BxP].set(1.0)
    return dict(inputs=inputs, targets=targets, mask=mask,
                positions=query_pos_BxP.astype(jnp.int32))

  def metrics(self, logits_BxLxV, batch):
    return base.scored_metrics(logits_BxLxV, batch)
