"""Rematerialisation: residuals saved for the backward pass, compiled memory, time.

  python benchmarks/remat_memory.py --model=transformer --length=2048 --layers=8 \
      --width=128 --batch=1 --model_args=num_heads=2

For remat off and on, prints one JSON line each with: residual_mb (what JAX saves
between the forward and the backward pass, from `jax.vjp`), and the full train
step's temp_mb (XLA's compiled temporary buffers), peak_rss_mb and step_time_ms
from benchmarks/step_time.py. Run each setting in its own process so peak RSS
is its own.
"""

import json
import subprocess
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from seqjax.tasks.base import cross_entropy

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import step_time  # pylint: disable=g-import-not-at-top,wrong-import-position

machine = step_time.machine  # one instance of its flags, however this file is run

# The flags are step_time's own (--model, --batch, --length, --width, --layers,
# --model_args); this script adds none.
F = flags.FLAGS


def residual_mb(model_args: str) -> float:
  section = step_time.model_section(F.model, F.width, F.layers,
                                    model_args)
  exp = step_time.make_experiment(section, F.length, 16, F.batch)
  tokens = jnp.zeros((F.batch, F.length), jnp.int32)
  params = exp.model.init(jax.random.key(0), tokens)["params"]
  loss = lambda p: cross_entropy(exp.model.apply({"params": p}, tokens), tokens,
                                 jnp.ones(tokens.shape))
  _, vjp = jax.vjp(loss, params)
  return sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(vjp)
             if hasattr(x, "dtype")) / 2**20


def main(argv):
  del argv
  machine.setup()
  for remat in ("false", "true"):
    model_args = ",".join(filter(None, [F.model_args, f"remat={remat}"]))
    cmd = [sys.executable, step_time.__file__, f"--model={F.model}",
           f"--batch={F.batch}", f"--length={F.length}",
           f"--width={F.width}", f"--layers={F.layers}", "--steps=2",
           f"--model_args={model_args}", f"--isa={F.isa}"]
    timed = json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1])
    machine.emit(dict(remat=remat, residual_mb=residual_mb(model_args),
                      temp_mb=timed["temp_mb"], peak_rss_mb=timed["peak_rss_mb"],
                      step_time_ms=timed["step_time_ms"], model=F.model,
                      length=F.length, layers=F.layers, width=F.width))


if __name__ == "__main__":
  app.run(main)
