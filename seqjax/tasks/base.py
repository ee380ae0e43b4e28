"""The losses and metrics tasks share. What a task provides (`Task` and its
optional members) and `IOSpec` are declared in `seqjax.interfaces`; the shape
legend is there too.
"""

import jax
import jax.numpy as jnp

from seqjax.interfaces import IOSpec  # tasks build theirs as `base.IOSpec(...)`, or `lm_io`


def lm_io(length: int, vocab: int, **fields) -> IOSpec:
  """The IOSpec of a language-model task: `length` tokens of `vocab` ids in,
  logits over the same `vocab` ids out at every position."""
  return IOSpec(kind="lm", length=length, output_size=vocab, input_vocab=vocab,
                **fields)


def scored(positions_BxP, batch: dict) -> dict:
  """`batch` with the per-position arrays (`targets`, `mask`) gathered at the
  positions it scores, `positions_BxP` [B, P]: what a model that computes its
  outputs only there (`SequenceModel(..., positions=...)`) is scored against."""
  def gather(x):
    index = positions_BxP.reshape(positions_BxP.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)
  return {k: gather(v) if k in ("targets", "mask") else v
          for k, v in batch.items() if k != "positions"}


def last_positions(batch_size: int, length: int, count: int):
  """[B, count] int32: the last `count` positions of every row."""
  return jnp.broadcast_to(jnp.arange(length - count, length, dtype=jnp.int32),
                          (batch_size, count))


def token_nll(logits_BxLxV, targets_BxL):
  """The negative log-likelihood of each target token [B, L], in float32."""
  logp = jax.nn.log_softmax(logits_BxLxV.astype(jnp.float32))
  return -jnp.take_along_axis(logp, targets_BxL[..., None], axis=-1)[..., 0]


def squared_error(outputs_BxLxV, targets_BxLxV):
  """The squared error of each position [B, L], summed over V, in float32."""
  return jnp.sum(
      jnp.square(outputs_BxLxV.astype(jnp.float32) - targets_BxLxV), axis=-1)


# The per-position loss of each task `loss` kind; the loss is their mean at the mask.
PER_POSITION = {"xent": token_nll, "mse": squared_error}


def cross_entropy(logits_BxLxV, targets_BxL, mask_BxL):
  """Mean token cross-entropy over the positions with weight in `mask`."""
  nll_BxL = token_nll(logits_BxLxV, targets_BxL)
  return jnp.sum(nll_BxL * mask_BxL) / jnp.maximum(jnp.sum(mask_BxL), 1.0)


def mean_squared_error(outputs_BxLxV, targets_BxLxV, mask_BxL):
  err_BxL = squared_error(outputs_BxLxV, targets_BxLxV)
  return jnp.sum(err_BxL * mask_BxL) / jnp.maximum(jnp.sum(mask_BxL), 1.0)


def loss_fn(kind: str, outputs, batch):
  if kind == "xent":
    return cross_entropy(outputs, batch["targets"], batch["mask"])
  return mean_squared_error(outputs, batch["targets"], batch["mask"])


def accuracy(logits_BxLxV, targets_BxL, mask_BxL):
  """Fraction of positions with weight in `mask` whose argmax is the target."""
  hit_BxL = (jnp.argmax(logits_BxLxV, axis=-1) == targets_BxL)
  return jnp.sum(hit_BxL * mask_BxL) / jnp.maximum(jnp.sum(mask_BxL), 1.0)


def sequence_accuracy(logits_BxLxV, targets_BxL, mask_BxL):
  """Fraction of sequences whose every position with weight in `mask` is right."""
  miss_BxL = (jnp.argmax(logits_BxLxV, axis=-1) != targets_BxL) & (mask_BxL > 0)
  return jnp.mean(~jnp.any(miss_BxL, axis=-1))


def last_position_mask(batch_size: int, length: int):
  """[B, L] float32 weights: 1 at the last position L-1, 0 elsewhere (classify)."""
  return jnp.broadcast_to(jnp.arange(length) == length - 1,
                          (batch_size, length)).astype(jnp.float32)


def classify_targets(labels_B, length: int):
  """A label per sequence broadcast to every position: targets [B, L] int32."""
  return jnp.broadcast_to(labels_B[:, None], (labels_B.shape[0], length)).astype(
      jnp.int32)


def scored_metrics(logits_BxLxV, batch):
  """Loss, accuracy and sequence accuracy at the positions `batch["mask"]` scores."""
  targets, mask = batch["targets"], batch["mask"]
  return dict(loss=cross_entropy(logits_BxLxV, targets, mask),
              accuracy=accuracy(logits_BxLxV, targets, mask),
              sequence_accuracy=sequence_accuracy(logits_BxLxV, targets, mask))


def solved_level(task, level: float | None) -> float | None:
  """The level of the headline metric that counts as solved: `level` (the
  config's `train.solved_level`) if given, else the task's `solved_level`."""
  return task.solved_level if level is None else level


def describe(task) -> dict:
  """What a run's numbers are measured against: the headline `metric`, its
  `mode` ("max" or "min" is better), its uniform `chance` level and the task's
  informed `baselines` ({} when it states none)."""
  return dict(metric=task.metric, mode=task.mode, chance=task.chance,
              baselines={name: dict(b) for name, b in
                         getattr(task, "baselines", {}).items()})
