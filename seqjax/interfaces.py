"""The interfaces models and tasks share: `IOSpec`, the task protocol, and the
shape legend. A leaf module: `seqjax.models` and `seqjax.tasks` both import it
and never each other.

Shape legend, the one of seqjax (suffixes on array names, as in nanodo:
`x_BxLxD`). One meaning per letter, in every file; a letter not in the legend is
declared in the docstring of the module that uses it (a module sharing its arrays
refers there: seqjax.models.dvae to seqjax.dvae_codec, seqjax.generation to
seqjax.sampling).
  B batch                      L sequence length (the source length S of seq2seq)
  S source length              T target length
  D model width                V output size (vocabulary or regression dimension)
  F input features             P scored positions per row (`positions` [B, P])
  H attention heads            K attention head dimension
  R recurrent hidden size      W window (positions a window model reads)
  Y image rows (height)        Z image columns (width)
"""

import dataclasses
from typing import Any, Protocol


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


class Task(Protocol):
  """What every task provides: a frozen dataclass whose fields are its config
  (`config.task`).

  Attributes:
    io: what the model reads and writes.
    loss: "xent" (integer targets [B, L]) or "mse" (real targets [B, L, V]).
    metric: the name of the headline metric; `mode` "max" or "min" says which way
      is better; `chance` is its chance level.
    solved_level: the value of `metric` on the validation batches that counts as
      solving the task (`train.stop_when_solved` stops a run there): 1.0 for an
      accuracy (no error), None where the metric has no natural such value.
  """
  io: IOSpec
  loss: str
  metric: str
  mode: str
  chance: float
  solved_level: float | None

  def batch(self, key, batch_size: int) -> dict:
    """A pure function of the key, traceable under jit so it runs on the device.

    Keys: `inputs` [B, L] int32 or [B, L, F] float32; `targets`; `mask` [B, L]
    float32, the loss weight of each position. Sequence-to-sequence tasks add
    `decoder_inputs` [B, T] (the shifted targets, teacher forcing). A task that
    scores a few known positions per row adds `positions` [B, P] int32 (every
    position with weight in `mask` among them): the train and eval steps then
    compute logits and loss there only (`tasks.base.scored`).
    """

  def metrics(self, outputs, batch: dict) -> dict:
    """Scalar metrics of one batch, `loss` included."""


# Optional members. A task has all the members of one of these protocols or none
# of them; the code that reads one checks with `hasattr` for the member named.

class DatasetTask(Protocol):
  """A task over a stored dataset: the arrays of a split are put on the device
  once and passed to a jitted `sample` (training, held-out estimates); `examples`
  gives the batch of given examples, for an exact pass over a split in order."""

  def data(self, split: str) -> dict:
    """The arrays of split "train", "eval" or "test"."""

  def sample(self, data: dict, key, batch_size: int) -> dict:
    """A batch drawn from `data` (with replacement)."""


class ExactEvaluation(DatasetTask, Protocol):
  """A dataset task whose test can pass over every example of a split once."""

  def examples(self, data: dict, index_B) -> dict:
    """The batch of the examples `index_B` [B] of `data`."""


class WithEvalSets(Protocol):
  """Extra evaluation sets: variants of the task, evaluated as split
  `eval_<name>` on the validation stream and `test_<name>` at the end."""
  eval_sets: dict[str, Any]


class WithBaselines(Protocol):
  """Informed baselines beside the uniform `chance`: {name: {"value", "metric",
  "what"}}, the value of `metric` that a stated simple strategy (`what`) reaches."""
  baselines: dict[str, dict]


class WithGeneration(Protocol):
  """A seq2seq task scored on the model's own generation: the eval step also
  calls `model.apply(..., method="generate", max_length=T)`."""

  def generation_metrics(self, tokens_BxT, batch: dict) -> dict:
    """Metrics of the generated tokens [B, T] against `batch`."""
