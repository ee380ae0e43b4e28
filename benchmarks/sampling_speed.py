"""Sampling speed of a trained text_to_image run, with and without the KV cache.

  python -m benchmarks.sampling_speed --workdir=runs/t2i_quick [--images=100] [--repeats=3]

Draws --images images (the captions of every digit in turn, 64 tokens each) with
`seqjax.sampling.sample_lm`, once reading the KV cache (prefill, then one token
per step) and once recomputing the full causal model over the fixed-length buffer
at every step, at temperature 0 and 1. Both are compiled first (compile time
reported separately); sampling time is the median of --repeats runs. Also checks
that both draw the same images. Prints one JSON line per (cache, temperature).
"""

import statistics
import time

from absl import app
from absl import flags
import jax
import numpy as onp

from benchmarks import machine
from seqjax import experiment
from seqjax import generation
from seqjax.tasks import text_to_image as t2i

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained text_to_image run.")
_IMAGES = flags.DEFINE_integer("images", 100, "Images per draw.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed draws (median).")


def main(argv):
  del argv
  machine.setup()
  restored = experiment.load(_WORKDIR.value)
  task = restored.task
  ids = onp.stack([t2i.encode_caption(t2i.captions(i % 10)[i // 10 % 12])
                   for i in range(_IMAGES.value)])
  prompt, key = task.prompt(ids), jax.random.key(0)
  drawn = {}
  for temperature in (0.0, 1.0):
    for cache in (True, False):
      sample = generation.image_sampler(restored, cache, temperature)
      t0 = time.perf_counter()
      compiled = sample.lower(prompt, key).compile()
      compile_s = time.perf_counter() - t0
      times = []
      for _ in range(_REPEATS.value):
        t0 = time.perf_counter()
        tokens = jax.block_until_ready(compiled(prompt, key))
        times.append(time.perf_counter() - t0)
      drawn[cache] = onp.asarray(tokens)
      sample_s = statistics.median(times)
      machine.emit(dict(
          kv_cache=cache, temperature=temperature, images=_IMAGES.value,
          compile_s=round(compile_s, 3), sample_s=round(sample_s, 4),
          tokens_per_s=round(tokens.size / sample_s),
          same_as_cached=bool((drawn[cache] == drawn[True]).all())))


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
