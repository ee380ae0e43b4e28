"""Train-step time of the linear recurrences (lru, mamba, rglru) against lstm and gru.

  python -m benchmarks.selective_step --batch=32 --length=256 --width=64 \
      --layers=1 --vocab=16 --steps=10 \
      [--models=lstm,gru,lru:sequential,lru:parallel,mamba:parallel,...]

Each entry of --models is a model name, optionally with `:scan` (sequential,
recompute or parallel) for the linear recurrences. Every model runs seqjax's own
training step (`benchmarks.step_time`: embedding, model, head, cross-entropy,
backward, clipping, AdamW) on the same random tokens at the same width D; the
steps are interleaved (one of each in turn) so that load on a shared machine
hits all alike. Prints one JSON line per model: median and min step time (ms),
compile time, parameters, and the median over the LSTM's (`over_lstm`, < 1:
faster than the LSTM) when the LSTM is among them.
"""


from absl import app
from absl import flags

from benchmarks import machine
from benchmarks import step_time

F = flags.FLAGS  # step_time's flags: --batch --length --width --layers --vocab --steps
_MODELS = flags.DEFINE_list(
    "models", ["lstm", "gru", "lru:sequential", "lru:recompute", "lru:parallel",
               "mamba:sequential", "mamba:recompute", "mamba:parallel",
               "rglru:sequential", "rglru:recompute", "rglru:parallel"],
    "Models to time, name or name:scan.")


def steps(entries, width, layers, length, vocab, batch) -> dict:
  """A compiled, blocking train step per entry ("name" or "name:scan")."""
  out = {}
  for entry in entries:
    name, _, scan = entry.partition(":")
    section = step_time.model_section(name, width, layers,
                                      f"scan={scan}" if scan else "")
    out[entry] = step_time.jax_step(step_time.make_experiment(section, length, vocab, batch))
  return out


def main(argv):
  del argv
  machine.setup()
  fns = steps(_MODELS.value, F.width, F.layers, F.length, F.vocab, F.batch)
  result = step_time.interleaved(fns, F.steps)
  lstm = result.get("lstm", {}).get("step_time_ms")
  for entry, row in result.items():
    row.update(model=entry, batch=F.batch, length=F.length, width=F.width,
               layers=F.layers, vocab=F.vocab)
    if lstm:
      row["over_lstm"] = row["step_time_ms"] / lstm
    machine.emit(row)


if __name__ == "__main__":
  app.run(main)
