"""seqjax's LSTM and GRU against the same model built from Flax's own cells.

  python -m benchmarks.recurrent_vs_flax --batch=32 --length=256 --width=256 \
      --layers=1 --vocab=16 --steps=20 [--model_args=scan_chunk=N] [--torch]

Both sides use seqjax's full training step (embedding, model, output layer,
cross-entropy, backward, AdamW) on the same random tokens; only the backbone
differs: ours (seqjax/models/recurrent.py) or `nn.RNN(nn.OptimizedLSTMCell)` /
`nn.RNN(nn.GRUCell)`. `--model_args=scan_chunk=N` projects the inputs of N steps
per matmul (default 8; 1: inside the step, like nn.RNN; >= length: fully
hoisted). With --torch, PyTorch's `nn.LSTM` / `nn.GRU` (oneDNN kernels on the
CPU) with the same embedding, head, loss, clipping and AdamW is timed too, if
torch is installed (it is never a dependency of seqjax). Steps are interleaved
(ours, Flax, torch, ours, ...) so that load on a shared machine hits all alike.
Prints one JSON line per model with the medians and the ratios other / ours
(> 1: ours is faster).
"""

import dataclasses

from absl import app
from absl import flags
import flax.linen as nn
import jax

from benchmarks import machine
from benchmarks import step_time
from seqjax.models.common import SequenceModel

F = flags.FLAGS  # step_time's flags: --batch --length --width --layers --vocab --steps
_TORCH = flags.DEFINE_bool("torch", False, "Also time PyTorch, if installed.")

FLAX_CELLS = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}


class FlaxBackbone(nn.Module):
  """Stacked `nn.RNN` layers of a Flax cell: x [B, L, D] -> [B, L, D]."""
  cell: str
  width: int
  num_layers: int

  @nn.compact
  def __call__(self, x_BxLxD, *, train: bool = False, decode: bool = False):
    del train, decode
    for _ in range(self.num_layers):
      x_BxLxD = nn.RNN(FLAX_CELLS[self.cell](self.width))(x_BxLxD)
    return x_BxLxD


def torch_step(name, batch, length, width, layers, vocab):
  """One training step of PyTorch's nn.LSTM / nn.GRU language model, AdamW after
  clipping, as a callable; None if torch is not installed."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  torch.manual_seed(0)
  rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name]
  return step_time.torch_lm_step(
      lambda: rnn(width, width, layers, batch_first=True),
      lambda backbone, x: backbone(x)[0], batch, length, width, vocab)


def main(argv):
  del argv
  machine.setup()
  for name in ("lstm", "gru"):
    section = step_time.model_section(name, F.width, F.layers, F.model_args)
    ours = step_time.make_experiment(section, F.length, F.vocab, F.batch)
    flax_model = SequenceModel(io=ours.task.io, width=F.width,
                               backbone=FlaxBackbone(name, F.width, F.layers))
    theirs = dataclasses.replace(ours, model=flax_model)
    torch = (lambda: torch_step(name, F.batch, F.length, F.width, F.layers, F.vocab)
             ) if _TORCH.value else None
    result = step_time.compare(
        {"seqjax": step_time.jax_step(ours), "flax": step_time.jax_step(theirs)},
        torch, F.steps, model=name, batch=F.batch, length=F.length, width=F.width,
        layers=F.layers, model_args=F.model_args, steps=F.steps,
        device=jax.devices()[0].device_kind)
    machine.emit(result)


if __name__ == "__main__":
  app.run(main)
