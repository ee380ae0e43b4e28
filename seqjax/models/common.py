"""The wrapper every per-position model shares: embed, backbone, output head.

Sharing it is what makes comparisons between architectures fair by construction:
the embedding and the output layer are the same for every backbone, and only the
sequence mixing in between differs.
"""

import flax.linen as nn
import jax.numpy as jnp

from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec


def check_seq2seq_io(name: str, io: IOSpec, instead: str) -> None:
  """Refuses a task that an encoder-decoder `name` cannot serve: one not of kind
  seq2seq (`instead` names a model for it), or whose IOSpec lacks the target
  length and the BOS and EOS tokens, or whose EOS is not an output token (so
  that generation could never stop)."""
  if io.kind != "seq2seq":
    raise ConfigError(f"model.name={name!r} serves tasks of kind seq2seq, not "
                      f"{io.kind!r}; use {instead!r}.")
  missing = [k for k in ("target_length", "bos_id", "eos_id")
             if getattr(io, k) is None]
  if missing:
    raise ConfigError(f"model.name={name!r} needs the task's IOSpec to give "
                      f"{', '.join(missing)}.")
  if io.eos_id >= io.output_size:
    raise ConfigError(f"The task's eos_id={io.eos_id} must be an output token "
                      f"(< output_size={io.output_size}) so that generation "
                      "can stop.")


class SequenceModel(nn.Module):
  """Maps inputs [B, L] (token ids) or [B, L, F] (features) to outputs [B, L, V].

  Autoregressive decoding follows Flax's convention (lm1b): with `decode=True`
  the call reads the next chunk of inputs (usually [B, 1]) and carries the
  recurrent state or the KV cache in the mutable "cache" collection:

    cache = model.init(key, inputs_Bx1, decode=True)["cache"]
    logits, upd = model.apply({"params": p, "cache": cache}, x_Bx1, decode=True,
                              mutable=["cache"])
    cache = upd["cache"]

  Calling step by step this way equals the full-sequence call (tested per model).

  Attributes:
    io: the task's IOSpec (input vocabulary or features, output size V).
    width: D, the embedding width the backbone reads and writes.
    backbone: a module mapping x [B, L, D] to y [B, L, D]; called as
      `backbone(x, train=..., decode=...)`.
  """
  io: IOSpec
  width: int
  backbone: nn.Module

  def __post_init__(self):
    if self.io.kind not in ("lm", "classify"):
      raise ConfigError(
          f"A per-position model serves tasks of kind lm or classify, not "
          f"{self.io.kind!r}; for seq2seq use rnn_encdec or transformer_encdec, "
          "for autoencode dvae.")
    super().__post_init__()

  @nn.compact
  def __call__(self, inputs, *, train: bool = False, decode: bool = False,
               positions=None):
    """`positions` [B, P] int32: outputs [B, P, V] at those positions only (the
    ones a task scores), so the head costs P, not L, rows per example."""
    x_BxLxD = embed(self.io, self.width)(inputs)
    # A zero added to the embeddings: its gradient is the gradient of the loss
    # with respect to each input position (seqjax diagnostics), for any backbone.
    x_BxLxD = self.perturb("embedded", x_BxLxD)
    y_BxLxD = self.backbone(x_BxLxD, train=train, decode=decode)
    if positions is not None:
      y_BxLxD = jnp.take_along_axis(y_BxLxD, positions[..., None], axis=1)
    return nn.Dense(self.io.output_size, name="head")(y_BxLxD)


def embed(io: IOSpec, width: int) -> nn.Module:
  """Token embedding, or a linear map for real-valued inputs."""
  if io.input_vocab is not None:
    return nn.Embed(io.input_vocab, width, name="embed")
  return nn.Dense(width, name="embed")
