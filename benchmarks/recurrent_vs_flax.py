"""seqjax's LSTM and GRU against the same model built from Flax's own cells.

  python benchmarks/recurrent_vs_flax.py --batch=32 --length=256 --width=256 --layers=1 --vocab=16 --steps=20

`--model_args=scan_chunk=N` sets how many steps share one input-projection matmul
(1: inside the step, like nn.RNN; >= length: fully hoisted).

Both sides use seqjax's full training step (embedding, model, output layer,
cross-entropy, backward, AdamW) on the same random tokens; only the backbone
differs: ours (recurrent.py: hoisted input projection + lax.scan) or
`nn.RNN(nn.OptimizedLSTMCell)` / `nn.RNN(nn.GRUCell)`. Steps are interleaved
(ours, Flax, ours, ...) so that load on a shared machine hits both alike. Prints
one JSON line per model with the medians and the ratio Flax / ours (> 1: ours
is faster).
"""

import dataclasses
import json
import statistics
import sys
import time

from absl import app
from absl import flags
import flax.linen as nn
import jax

from seqjax import train
from seqjax.models.common import SequenceModel

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import step_time  # pylint: disable=g-import-not-at-top,wrong-import-position

F = flags.FLAGS  # step_time's flags: --batch --length --width --layers --vocab --steps

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


def compiled_step(exp):
  state = train.init_state(exp)
  step = train.make_train_step(exp)
  batch = train.make_batch_fn(exp, train.TRAIN)(0)
  compiled = step.lower(state, batch).compile()
  state, _ = compiled(state, batch)
  jax.block_until_ready(state)
  return compiled, state, batch


def main(argv):
  del argv
  for name in ("lstm", "gru"):
    section = step_time.model_section(name, F.width, F.layers, F.model_args)
    ours = step_time.experiment(section, F.length, F.vocab, F.batch)
    flax_model = SequenceModel(io=ours.task.io, width=F.width,
                               backbone=FlaxBackbone(name, F.width, F.layers))
    theirs = dataclasses.replace(ours, model=flax_model)
    runs = {label: compiled_step(exp) for label, exp in
            (("seqjax", ours), ("flax", theirs))}
    times = {label: [] for label in runs}
    for _ in range(F.steps):
      for label, (compiled, state, batch) in runs.items():
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))
        times[label].append(time.perf_counter() - t0)
        runs[label] = (compiled, state, batch)
    median = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    print(json.dumps(dict(
        model=name, seqjax_ms=median["seqjax"], flax_ms=median["flax"],
        flax_over_seqjax=median["flax"] / median["seqjax"],
        seqjax_min_ms=1e3 * min(times["seqjax"]), flax_min_ms=1e3 * min(times["flax"]),
        params_seqjax=train.num_params(runs["seqjax"][1].params),
        params_flax=train.num_params(runs["flax"][1].params),
        batch=F.batch, length=F.length, width=F.width, layers=F.layers,
        steps=F.steps, device=jax.devices()[0].device_kind)))


if __name__ == "__main__":
  app.run(main)
