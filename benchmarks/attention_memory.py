"""Peak memory of one training step against length: the XLA attention path
against the blockwise (memory-efficient) path, batch 1.

  python -m benchmarks.attention_memory --lengths=512,1024,2048,4096,8192,16384 \
      --width=128 --layers=2 --heads=2 --run_limit_gib=6

Each point runs in a fresh subprocess (`--point=IMPL:LENGTH`), which compiles
seqjax's train step of the decoder-only `transformer` and reports XLA's compiled
memory analysis (temporaries + arguments + outputs; what the step needs, known
before it runs). When that estimate is below --run_limit_gib the subprocess also
runs the step and reports its peak resident set size (RSS) and the loss. Larger
points are compiled only, so a quadratic path cannot exhaust a shared machine.
Prints one JSON line per point.
"""

import resource
import subprocess
import sys
import time

from absl import app
from absl import flags
import jax

from benchmarks import machine
from benchmarks import step_time
from seqjax import experiment
from seqjax import stepping

_LENGTHS = flags.DEFINE_list("lengths", "512,1024,2048,4096,8192,16384",
                             "Sequence lengths.")
_IMPLS = flags.DEFINE_list("impls", "xla,blockwise", "Attention implementations.")
_HEADS = flags.DEFINE_integer("heads", 2, "Attention heads.")
_BLOCK = flags.DEFINE_integer("block_size", 512, "Blockwise block size.")
_RUN_LIMIT = flags.DEFINE_float(
    "run_limit_gib", 6.0, "Run the step only when XLA's estimate is below this.")
_POINT = flags.DEFINE_string("point", "", "Internal: IMPL:LENGTH to measure.")
FLAGS = flags.FLAGS   # --width --layers --vocab are step_time's flags.


def measure(impl: str, length: int, width: int, layers: int, vocab: int,
            heads: int, block_size: int, run_limit_gib: float) -> dict:
  """Compiles (and maybe runs) one train step at batch 1; in this process."""
  cfg = step_time.model_section(
      "transformer", width, layers,
      f"num_heads={heads},attention_impl={impl},block_size={block_size},"
      "positional=rope")
  exp = step_time.make_experiment(cfg, length, vocab, 1)
  abstract = (experiment.abstract_state(exp), jax.eval_shape(
      stepping.make_batch_fn(exp, experiment.TRAIN), 0))
  t0 = time.perf_counter()
  compiled = stepping.make_train_step(exp).lower(*abstract).compile()
  mem = compiled.memory_analysis()
  need = (mem.temp_size_in_bytes + mem.argument_size_in_bytes
          + mem.output_size_in_bytes)
  out = dict(impl=impl, length=length, compile_s=time.perf_counter() - t0,
             xla_temp_mib=mem.temp_size_in_bytes / 2**20,
             xla_total_mib=need / 2**20, ran=False)
  if need < run_limit_gib * 2**30:
    state = experiment.init_state(exp)
    batch = stepping.make_batch_fn(exp, experiment.TRAIN)(0)
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    loss = float(jax.device_get(metrics["loss"]))
    out.update(ran=True, step_s=time.perf_counter() - t0, loss=loss,
               peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
  return out


def main(argv):
  del argv
  machine.setup()
  if _POINT.value:
    impl, length = _POINT.value.split(":")
    machine.emit(measure(impl, int(length), FLAGS.width, FLAGS.layers,
                         FLAGS.vocab, _HEADS.value, _BLOCK.value,
                         _RUN_LIMIT.value))
    return
  passthrough = [f"--{k}={FLAGS[k].value}" for k in
                 ("width", "layers", "vocab", "heads", "block_size",
                  "run_limit_gib", "isa")]
  for length in map(int, _LENGTHS.value):
    for impl in _IMPLS.value:
      proc = subprocess.run(
          [sys.executable, "-m", "benchmarks.attention_memory",
           f"--point={impl}:{length}", *passthrough],
          capture_output=True, text=True, check=False)
      lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
      if lines:
        print(lines[-1], flush=True)
      else:
        machine.emit(dict(impl=impl, length=length, error=proc.stderr[-500:]))


if __name__ == "__main__":
  app.run(main)
