"""Vanishing and exploding gradients at initialisation (Bengio et al. 1994;
Pascanu et al. 2013): the `gradients` row of docs/reproductions.md.

  python -m seqjax.vanishing --config=experiments/reproduce.py:claim=gradients,quick --workdir=runs/reproduce/gradients

No training: every trial of the config's sweep (model x length x width x seed)
is built and initialised with its seed, and on one validation batch the norm
of the gradient of the loss at the last scored position t with respect to the
input embedding at t - k is measured for every distance k
(`diagnostics.grad_through_time`). Per trial: a least-squares fit of
ln |grad| against k over k = 1 .. L-1 (the per-step factor exp(slope); below 1
vanishes, above 1 explodes), the ratio of the farthest quarter's mean norm to
the nearest quarter's (k = 0, the direct path, left out), and for recurrent
models the spectral radius of the recurrent matrix (`diagnostics.spectral_radii`).
Writes DIR/gradients.json ({"models": {model: [per-trial results]},
"wall_time_s": the command's, compilation included}) and DIR/gradients.png
(geometric mean over seeds against distance).
"""

import math
import os
import time

from absl import app
from absl import flags
import jax
import numpy as onp

from seqjax import configs
from seqjax import diagnostics
from seqjax import experiment
from seqjax import run_files
from seqjax import sweep


def far_near_ratio(grad_norm) -> float:
  """Mean norm over the farthest quarter of distances over the nearest
  quarter's (distance 0 left out)."""
  norms = onp.asarray(grad_norm[1:], onp.float64)
  quarter = max(1, len(norms) // 4)
  return float(norms[-quarter:].mean() / norms[:quarter].mean())


def fit_rate(distance, grad_norm) -> dict:
  """Least squares of ln |grad| on k over k >= 1 where the norm is positive and
  finite: {"slope", "factor" (exp(slope), per step), "r2", "points" (used),
  "dropped" (zero or not finite: underflow or overflow)}."""
  k = onp.asarray(distance[1:], onp.float64)
  g = onp.asarray(grad_norm[1:], onp.float64)
  ok = onp.isfinite(g) & (g > 0)
  if ok.sum() < 2:
    raise ValueError(f"Only {int(ok.sum())} positive finite gradient norms: no rate to fit.")
  x, y = k[ok], onp.log(g[ok])
  slope, intercept = onp.polyfit(x, y, 1)
  residual = y - (slope * x + intercept)
  spread = ((y - y.mean()) ** 2).sum()
  r2 = 1.0 - (residual ** 2).sum() / spread if spread > 0 else 1.0
  return dict(slope=float(slope), factor=float(math.exp(slope)), r2=float(r2),
              points=int(ok.sum()), dropped=int((~ok).sum()))


def measure(config, batch_size: int, gradients=None) -> dict:
  """The gradient-through-time measures of one trial at its initialisation;
  `gradients`: a `diagnostics.make_grad_through_time` of its model, to reuse
  one compiled function across seeds."""
  exp = experiment.build(config)
  params = experiment.init_state(exp).params
  batch = jax.device_get(exp.task.batch(exp.key(experiment.VALID, 0), batch_size))
  gradients = gradients or diagnostics.make_grad_through_time(exp.model, exp.task.loss)
  gtt = gradients(params, batch)
  radii = diagnostics.spectral_radii(params)
  return dict(distance=gtt["distance"], grad_norm=gtt["grad_norm"],
              future_grad_norm=gtt["future_grad_norm"],
              far_near=far_near_ratio(gtt["grad_norm"]),
              spectral_radius=max(radii.values()) if radii else None,
              **fit_rate(gtt["distance"], gtt["grad_norm"]))


def run(config_path: str, workdir: str) -> dict:
  """Measures every trial of the sweep at `config_path` ("FILE:ARG"); writes
  and returns {model: [per-trial results, with their overrides]}."""
  start = time.time()
  path, _, arg = config_path.partition(":")
  module = configs.load_module(path)
  out, compiled = {}, {}
  for overrides in module.get_sweep(arg):
    config = sweep.trial_config(module, arg, overrides)
    point = tuple(sorted((k, v) for k, v in overrides.items() if k != "train.seed"))
    if point not in compiled:  # one compiled gradient per point, for every seed
      exp = experiment.build(config)
      compiled[point] = diagnostics.make_grad_through_time(exp.model, exp.task.loss)
    result = measure(config, config.train.batch_size, compiled[point])
    out.setdefault(overrides["arg.model"], []).append(dict(result, overrides=overrides))
  os.makedirs(workdir, exist_ok=True)
  run_files.write_json(os.path.join(workdir, "gradients.json"),
                       dict(models=out, wall_time_s=time.time() - start))
  plot(out, os.path.join(workdir, "gradients.png"))
  return out


def plot(results: dict, path: str) -> None:
  """Geometric mean over a model's trials of the gradient norm against distance."""
  from seqjax import plots  # pylint: disable=import-outside-toplevel
  series = {}
  for model, trials in results.items():
    norms = onp.asarray([t["grad_norm"] for t in trials], onp.float64)
    with onp.errstate(divide="ignore"):
      series[f"{model} ({len(trials)} seeds)"] = dict(
          distance=trials[0]["distance"], grad_norm=onp.exp(onp.log(norms).mean(0)))
  plots.curves(series, "distance", "grad_norm", path,
               title="Gradient of the loss at t through the input at t - k, at init",
               ylabel="|d loss_t / d x_(t - k)|")


def main(argv):
  del argv
  out = run(flags.FLAGS.config, flags.FLAGS.workdir)
  for model, trials in out.items():
    factors = [t["factor"] for t in trials]
    print(f"{model}: per-step factor {onp.mean(factors):.4f} "
          f"({min(factors):.4f}-{max(factors):.4f}); far/near "
          f"{onp.mean([t['far_near'] for t in trials]):.3g}")


if __name__ == "__main__":
  flags.DEFINE_string("config", None, "FILE:ARG of an experiment with get_sweep.")
  flags.DEFINE_string("workdir", "runs/reproduce/gradients", "Output folder.")
  flags.mark_flag_as_required("config")
  app.run(main)
