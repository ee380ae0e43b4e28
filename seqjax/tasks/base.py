"""What every task provides, and the losses and metrics they share.

Shape legend used across seqjax (shape suffixes, as in nanodo):
  B batch, L sequence length, S source length, T target length, D model width,
  V output size (vocabulary or regression dimension), F input features,
  H attention heads, K head dimension.

A task is a frozen dataclass whose fields are its config (`config.task`), with:
  io       -> IOSpec: what the model reads and writes.
  loss     -> "xent" (integer targets [B, L]) or "mse" (real targets [B, L, V]).
  metric   -> name of the headline metric; `mode` "max" or "min" says which way is
              better; `chance` is its chance level; `solved` the value that counts
              as solving the task.
  batch(key, batch_size) -> dict of arrays, a pure function of the key, traceable
              under jit so it runs on the device. Keys: `inputs` [B, L] int32 or
              [B, L, F] float32; `targets`; `mask` [B, L] float32, the loss weight
              of each position. Sequence-to-sequence tasks add `decoder_inputs`
              [B, T] (the shifted targets, teacher forcing). A task that scores a
              few known positions per row adds `positions` [B, P] int32 (every
              position with weight in `mask` among them): the train and eval
              steps then compute logits and loss there only (`scored`).
  metrics(outputs, batch) -> dict of scalar metrics of one batch, `loss` included.
Optional:
  data(split), sample(data, key, batch_size), examples(data, index_B) -> a dataset
              task: the arrays of split "train", "eval" or "test"; a batch drawn
              with replacement (training); the batch of the given examples
              (evaluation passes over a split in order, every example once).
  baselines -> {name: {"value", "metric", "what"}}: informed baselines beside the
              uniform `chance`, each the value of `metric` that a stated simple
              strategy reaches (`what`). `describe` reads them.
"""

import dataclasses

import jax
import jax.numpy as jnp

KINDS = ("lm", "classify", "seq2seq", "autoencode")


@dataclasses.dataclass(frozen=True)
class IOSpec:
  """What a model must read and write for a task.

  Attributes:
    kind: "lm" (an output per position, causal models), "classify" (one label per
      sequence, read at the last position), "seq2seq" (source and target) or
      "autoencode" (inputs [B, L, F] -> outputs [B, T, V], reconstruction).
    length: input length L (the source length S for seq2seq).
    output_size: V, logits per position, or the regression dimension.
    input_vocab: number of input token ids, or None for real-valued inputs.
    input_features: F for real-valued inputs [B, L, F], else None.
    target_length: T for seq2seq and autoencode.
    bos_id, eos_id: begin and end tokens of seq2seq targets.
    eval_lengths: other input lengths the model is also evaluated at (the
      task's `eval_sets`), so a model can refuse lengths it cannot read.
    pair: classify a pair of documents (LRA Retrieval): inputs [B, L] hold
      document 1 in the first L/2 positions and document 2 in the rest; a model
      encodes each separately (seqjax.models.two_tower).
  """
  kind: str
  length: int
  output_size: int
  input_vocab: int | None = None
  input_features: int | None = None
  target_length: int | None = None
  bos_id: int | None = None
  eos_id: int | None = None
  eval_lengths: tuple[int, ...] = ()
  pair: bool = False


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


def cross_entropy(logits_BxLxV, targets_BxL, mask_BxL):
  """Mean token cross-entropy over the positions with weight in `mask`."""
  logp = jax.nn.log_softmax(logits_BxLxV.astype(jnp.float32))
  nll_BxL = -jnp.take_along_axis(logp, targets_BxL[..., None], axis=-1)[..., 0]
  return jnp.sum(nll_BxL * mask_BxL) / jnp.maximum(jnp.sum(mask_BxL), 1.0)


def mean_squared_error(outputs_BxLxV, targets_BxLxV, mask_BxL):
  err_BxL = jnp.sum(
      jnp.square(outputs_BxLxV.astype(jnp.float32) - targets_BxLxV), axis=-1)
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


def describe(task) -> dict:
  """What a run's numbers are measured against: the headline `metric`, its
  `mode` ("max" or "min" is better), its uniform `chance` level and the task's
  informed `baselines` ({} when it states none)."""
  return dict(metric=task.metric, mode=task.mode, chance=task.chance,
              baselines={name: dict(b) for name, b in
                         getattr(task, "baselines", {}).items()})
