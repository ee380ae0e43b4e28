"""Sequence reversal: the translation-shaped task for encoder-decoder models
(Sutskever, Vinyals & Le 2014, "Sequence to Sequence Learning with Neural
Networks", whose models read the source reversed because the first target words
depend on the first source words; reversing the whole sequence makes every
dependency span the source).

Source [B, S]: uniform symbols 0..vocab-1. Target [B, T], T = S + 1: the source
reversed, then EOS. Teacher forcing: decoder_inputs = BOS + targets[:-1]. Ids:
EOS = vocab (an output token, so generation can stop), BOS = vocab + 1 (a decoder
input only). Every target position is scored, EOS included.

Headline metric: `exact_match`, the fraction of sequences whose greedy generated
output (`model.generate`, evaluation only) equals the target up to and including
EOS. Evaluation also reports `generated_accuracy` (token accuracy of generated
outputs) beside the teacher-forced `accuracy` and `sequence_accuracy` that
training logs too. Chance: exact match vocab^-S, effectively 0.
"""

import dataclasses

import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.tasks import base


@dataclasses.dataclass(frozen=True)
class Reverse:
  """Attributes are the `config.task` fields of `reverse`."""
  length: int = 64        # S: source length; the target has S + 1 tokens
  vocab: int = 16         # source symbols

  loss = "xent"
  metric = "exact_match"  # generated outputs equal to the target (evaluation)
  mode = "max"
  solved_level = 1.0

  def __post_init__(self):
    configs.check_positive("task", length=self.length, vocab=self.vocab)

  @property
  def eos_id(self) -> int:
    return self.vocab

  @property
  def bos_id(self) -> int:
    return self.vocab + 1

  @property
  def io(self) -> base.IOSpec:
    return base.IOSpec(kind="seq2seq", length=self.length,
                       output_size=self.vocab + 1, input_vocab=self.vocab,
                       target_length=self.length + 1, bos_id=self.bos_id,
                       eos_id=self.eos_id)

  @property
  def chance(self) -> float:
    return float(self.vocab) ** -self.length

  def batch(self, key, batch_size: int):
    return self.example(jax.random.randint(
        key, (batch_size, self.length), 0, self.vocab, dtype=jnp.int32))

  def example(self, source_BxS):
    """The batch of given sources [B, S]."""
    batch_size = source_BxS.shape[0]
    eos_Bx1 = jnp.full((batch_size, 1), self.eos_id, jnp.int32)
    bos_Bx1 = jnp.full((batch_size, 1), self.bos_id, jnp.int32)
    targets_BxT = jnp.concatenate([source_BxS[:, ::-1], eos_Bx1], axis=1)
    return dict(inputs=source_BxS,
                decoder_inputs=jnp.concatenate([bos_Bx1, targets_BxT[:, :-1]], axis=1),
                targets=targets_BxT,
                mask=jnp.ones(targets_BxT.shape, jnp.float32))

  def metrics(self, logits_BxTxV, batch):
    return base.scored_metrics(logits_BxTxV, batch)

  def generation_metrics(self, tokens_BxT, batch):
    """Metrics of generated tokens [B, T] against the targets."""
    hit_BxT = (tokens_BxT == batch["targets"]) | (batch["mask"] == 0)
    return dict(exact_match=jnp.mean(jnp.all(hit_BxT, axis=-1)),
                generated_accuracy=jnp.sum((tokens_BxT == batch["targets"]) *
                                           batch["mask"]) / jnp.sum(batch["mask"]))
