"""The train step with logits at the scored positions only, against full logits.

Associative recall scores P query positions of L; its output layer is V wide
(Zoology's vocabulary: 8,192). The same step is timed on the same batches with
`positions` (logits at the P positions) and without it (logits at all L), runs
interleaved, median of --steps after compilation.

  python -m benchmarks.scored_positions [--model=transformer] [--vocab=8192]
      [--length=64] [--pairs=4] [--batch=32] [--width=64] [--steps=10]

Prints one JSON line: ms per step each way and their ratio.
"""

import statistics
import time

from absl import app
from absl import flags
import jax
import ml_collections

from benchmarks import machine
from seqjax import configs
from seqjax import experiment
from seqjax import models
from seqjax import parallel
from seqjax import stepping
from seqjax import tasks

_MODEL = flags.DEFINE_string("model", "transformer", "Model name.")
_VOCAB = flags.DEFINE_integer("vocab", 8192, "Vocabulary V.")
_LENGTH = flags.DEFINE_integer("length", 64, "Sequence length L.")
_PAIRS = flags.DEFINE_integer("pairs", 4, "Key-value pairs P (the scored positions).")
_BATCH = flags.DEFINE_integer("batch", 32, "Batch size.")
_WIDTH = flags.DEFINE_integer("width", 64, "Model width.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per way.")


def main(argv):
  del argv
  machine.setup()
  config = ml_collections.ConfigDict()
  config.task = tasks.task_config("associative_recall", length=_LENGTH.value,
                                  num_pairs=_PAIRS.value, vocab=_VOCAB.value)
  config.model = models.model_config(_MODEL.value, width=_WIDTH.value)
  config.train = configs.train_defaults()
  config.train.batch_size = _BATCH.value
  config.mesh = parallel.mesh_defaults()
  exp = experiment.build(config)
  step = stepping.make_train_step(exp)
  batch_fn = stepping.make_batch_fn(exp, experiment.TRAIN)
  batches = {"scored": [batch_fn(i) for i in range(_STEPS.value + 1)]}
  batches["full"] = [{k: v for k, v in b.items() if k != "positions"}
                     for b in batches["scored"]]
  states, compiled, times = {}, {}, {"scored": [], "full": []}
  for way, bs in batches.items():
    states[way] = experiment.init_state(exp)
    compiled[way] = step.lower(states[way], bs[0]).compile()
    states[way], _ = compiled[way](states[way], bs[0])  # warm-up
    jax.block_until_ready(states[way])
  for i in range(1, _STEPS.value + 1):
    for way in ("scored", "full"):
      t0 = time.perf_counter()
      states[way], metrics = compiled[way](states[way], batches[way][i])
      jax.block_until_ready((states[way], metrics))
      times[way].append(1e3 * (time.perf_counter() - t0))
  ms = {way: statistics.median(t) for way, t in times.items()}
  machine.emit(dict(
      model=_MODEL.value, vocab=_VOCAB.value, length=_LENGTH.value,
      pairs=_PAIRS.value, batch=_BATCH.value, width=_WIDTH.value,
      scored_ms=round(ms["scored"], 2), full_ms=round(ms["full"], 2),
      full_over_scored=round(ms["full"] / ms["scored"], 2)))


if __name__ == "__main__":
  app.run(main)
