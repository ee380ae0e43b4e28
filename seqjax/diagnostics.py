"""Seeing why a model forgets: gradient through time and attention maps.

Gradient through time (any per-position model, no access to internals): for each
example, take the loss at its last scored position t and the gradient of that
loss with respect to the input embedding x_s at every position s (through the
zero "embedded" perturbation of `SequenceModel`). Its norm, averaged over the
batch at each distance t - s, is how much the prediction at t can still learn
from an input that far back. A plain tanh RNN's falls geometrically with
distance (vanishing gradients, Bengio et al. 1994); a ReLU RNN with large
recurrent weights grows (exploding, Pascanu et al. 2013); attention's does not
fall. Gradients with respect to positions after t are exactly zero in a causal
model; `grad_through_time` returns them as well so that can be checked.

For recurrent models also: the norm of d h_T / d h_t through the recurrence
itself (the carried state of the decode convention, so any recurrent model
works), and the spectral radius of each square recurrent matrix (`w_rec` blocks),
or for the diagonal recurrences the largest decay per step (LRU |lambda|; Mamba
and the RG-LRU, whose decay depends on the input: `decay_rates`).

Attention maps: the weights [B, H, L, S] of every layer, captured by rebuilding
the model with `capture_weights=True` (same parameters).
"""

import dataclasses
import os

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as onp

from seqjax import checkpoints
from seqjax import experiment
from seqjax import models
from seqjax import run_files
from seqjax.errors import ConfigError
from seqjax.tasks import base


def input_gradients(model, params, batch, loss: str = "xent"):
  """Gradient norms [B, L] of each example's loss at its last scored position
  with respect to the input embedding at every position, and that position [B]."""
  inputs, targets, mask_BxL = batch["inputs"], batch["targets"], batch["mask"]
  length = mask_BxL.shape[1]
  last_B = length - 1 - jnp.argmax(mask_BxL[:, ::-1] > 0, axis=1)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), inputs))
  if "perturbations" not in shapes:
    raise ValueError("Gradient through time needs a per-position model built on "
                     "SequenceModel (its 'embedded' perturbation).")
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                 shapes["perturbations"])
  per_position = base.PER_POSITION[loss]

  def loss_at_last(perturbations):
    outputs = model.apply({"params": params, "perturbations": perturbations}, inputs)
    values_BxL = per_position(outputs, targets)
    return jnp.sum(jnp.take_along_axis(values_BxL, last_B[:, None], axis=1))

  grads = jax.grad(loss_at_last)(zeros)["embedded"].astype(jnp.float32)
  # Scaled by the largest entry first: an exploding gradient's entries (1e22)
  # are finite in float32 where the sum of their squares is not.
  scale = jnp.max(jnp.abs(grads), axis=-1, keepdims=True)
  unit = grads / jnp.where(scale > 0, scale, 1.0)
  return scale[..., 0] * jnp.linalg.norm(unit, axis=-1), last_B


def grad_through_time(model, params, batch, loss: str = "xent") -> dict:
  """{"distance": [0..L-1], "grad_norm": mean over examples at that distance,
  "future_grad_norm": largest gradient norm at any position after t}."""
  return make_grad_through_time(model, loss)(params, batch)


def make_grad_through_time(model, loss: str = "xent"):
  """`grad_through_time` for one model, compiled once for many parameters."""
  gradients = jax.jit(lambda p, b: input_gradients(model, p, b, loss))
  return lambda params, batch: _by_distance(
      *jax.device_get(gradients(params, batch)))


def _by_distance(norms_BxL, last_B) -> dict:
  length = norms_BxL.shape[1]
  distance_BxL = last_B[:, None] - onp.arange(length)[None, :]
  sums, counts = onp.zeros(length), onp.zeros(length)
  past = distance_BxL >= 0
  onp.add.at(sums, distance_BxL[past], norms_BxL[past])
  onp.add.at(counts, distance_BxL[past], 1)
  seen = counts > 0
  return {"distance": onp.arange(length)[seen].tolist(),
          "grad_norm": (sums[seen] / counts[seen]).tolist(),
          "future_grad_norm": float(norms_BxL[~past].max(initial=0.0))}


def state_jacobian_norms(model, params, inputs_BxL, distances) -> dict:
  """Frobenius norm of d h_T / d h_{T-d} through the recurrence, for each d,
  averaged over the batch. h is the whole carried state of the decode
  convention (every leaf of the "cache" collection), T the last position."""
  length = inputs_BxL.shape[1]
  cache0 = model.init(jax.random.key(0), inputs_BxL[:, :1], decode=True)["cache"]

  def run(cache, chunk):
    _, updated = model.apply({"params": params, "cache": cache}, chunk,
                             decode=True, mutable=["cache"])
    return updated["cache"]

  def jacobian_norm(cache_one, tail_L):  # one example: leaves without batch dim
    flat, unravel = jax.flatten_util.ravel_pytree(cache_one)
    def step(v):
      cache = jax.tree_util.tree_map(lambda x: x[None], unravel(v))
      return jax.flatten_util.ravel_pytree(run(cache, tail_L[None]))[0]
    return jnp.linalg.norm(jax.jacfwd(step)(flat))

  @jax.jit
  def mean_norm(start_cache, tail_BxD):
    return jnp.mean(jax.vmap(jacobian_norm)(start_cache, tail_BxD))

  out = {}
  for d in distances:
    if 0 < d < length:
      cache_t = jax.jit(run)(cache0, inputs_BxL[:, :length - d])
      out[int(d)] = float(mean_norm(cache_t, inputs_BxL[:, length - d:]))
  return {"distance": list(out), "jacobian_norm": list(out.values())}


def decay_rates(params, rglru_c: float = 8.0) -> dict:
  """Per-channel decay per step of the selective recurrences, from parameters
  alone: {path: [E] array}. Their decay depends on the input, so a reference
  input is fixed: Mamba's channel e at its resting delta (the delta projection's
  input zero), max_n exp(-softplus(dt_bias_e) exp(A_log_en)), its slowest mode;
  the RG-LRU's channel at a fully open recurrence gate (r_t = 1),
  sigmoid(Lambda_e)^c, the fastest it can forget (r_t < 1 moves it toward 1)."""
  flat = {"/".join(str(getattr(k, "key", k)) for k in path): onp.asarray(w, onp.float64)
          for path, w in jax.tree_util.tree_flatten_with_path(params)[0]}
  rates = {}
  for name, w in flat.items():
    if name.endswith("/A_log"):
      delta = onp.logaddexp(0.0, flat[name[:-len("A_log")] + "dt_bias"])
      rates[name] = onp.max(onp.exp(-delta[:, None] * onp.exp(w)), axis=-1)
    elif name.endswith("/Lambda"):
      rates[name] = onp.exp(-rglru_c * onp.logaddexp(0.0, -w))
  return rates


def spectral_radii(params, rglru_c: float = 8.0) -> dict:
  """Spectral radius of every square block of every `w_rec` matrix [H, n H],
  of every LRU's diagonal recurrence (max |lambda| = exp(-exp(nu_log))), and
  its analogue for Mamba and the RG-LRU: the largest of their `decay_rates`."""
  radii = {name: float(onp.max(r)) for name, r in decay_rates(params, rglru_c).items()}
  for path, w in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    if name.endswith("nu_log"):
      radii[name] = float(onp.max(onp.exp(-onp.exp(onp.asarray(w, onp.float64)))))
      continue
    if not name.endswith("w_rec") or w.ndim != 2 or w.shape[1] % w.shape[0]:
      continue
    h = w.shape[0]
    for i in range(w.shape[1] // h):
      block = onp.asarray(w[:, i * h:(i + 1) * h], onp.float64)
      radii[f"{name}[{i}]"] = float(onp.max(onp.abs(onp.linalg.eigvals(block))))
  return radii


def attention_maps(model_config, io, params, inputs) -> list:
  """Attention weights of every attention layer, in order: arrays [B, H, L, S]."""
  capturing = dataclasses.replace(model_config, capture_weights=True).build(io)
  _, state = capturing.apply({"params": params}, inputs, mutable=["intermediates"])
  found = []
  for path, w in jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]:
    names = [str(getattr(k, "key", k)) for k in path]
    if "attention_weights" in names:
      found.append(("/".join(n for n in names if n != "attention_weights"), w))
  return found


def run(workdir: str, batch_size: int = 16) -> dict:
  """Diagnostics of a run at initialisation and at each saved checkpoint.

  Writes to DIR/diagnostics/: grad_through_time.json ({label: {distance,
  grad_norm}}, labels "init" and the checkpoint steps) and .png; for recurrent
  models state_jacobian.json and spectral_radius.json; for attention models
  attention_<label>.png heat maps of the first validation example.
  """
  from seqjax import configs, plots  # pylint: disable=import-outside-toplevel
  config = run_files.load_config(workdir)
  exp = experiment.build(config)
  if exp.task.io.pair:
    raise ConfigError(
        f"Diagnostics of {workdir!r} are not available: task.name="
        f"{config.task.name!r} is a pair task, whose two-tower model encodes each "
        "document separately; gradient through time and attention maps are "
        "defined here for one sequence.")
  batch = jax.device_get(exp.task.batch(exp.key(experiment.VALID, 0), batch_size))
  mngr = checkpoints.manager(workdir, exp.train.keep_checkpoints, exp.task.metric,
                             exp.task.mode, read_only=True)
  labelled = [("init", experiment.init_state(exp).params)]
  labelled += [(str(s), experiment.load(workdir, s).params)
               for s in sorted(mngr.all_steps())]
  out_dir = os.path.join(workdir, "diagnostics")
  os.makedirs(out_dir, exist_ok=True)
  title = f"{config.model.name} on {config.task.name}"
  model_cfg = configs.to_dataclass(models.MODELS, config.model, "model")

  measure = make_grad_through_time(exp.model, exp.task.loss)
  gtt = {label: measure(p, batch) for label, p in labelled}
  result = {"grad_through_time": {
      k: {"distance": v["distance"], "grad_norm": v["grad_norm"]}
      for k, v in gtt.items()}}
  plots.curves(result["grad_through_time"], "distance", "grad_norm",
               os.path.join(out_dir, "grad_through_time.png"), title=title,
               ylabel="|d loss_t / d x_(t - distance)|")
  if config.model.name in models.RECURRENT:
    length = batch["inputs"].shape[1]
    distances = sorted({int(d) for d in onp.geomspace(1, length - 1, 6)})
    small = batch["inputs"][:4]
    result["state_jacobian"] = {
        label: state_jacobian_norms(exp.model, p, small, distances)
        for label, p in labelled}
    c = getattr(model_cfg, "c", 8.0)  # the RG-LRU's exponent
    result["spectral_radius"] = {label: spectral_radii(p, c) for label, p in labelled}
    plots.curves(result["state_jacobian"], "distance", "jacobian_norm",
                 os.path.join(out_dir, "state_jacobian.png"), title=title,
                 ylabel="|d h_T / d h_(T - distance)|")
  if hasattr(model_cfg, "capture_weights") and exp.task.io.kind != "seq2seq":
    for label, p in labelled[-1:]:
      maps = attention_maps(model_cfg, exp.task.io, p, batch["inputs"][:1])
      plots.attention_maps(maps, batch["inputs"][0],
                           os.path.join(out_dir, f"attention_{label}.png"),
                           title=f"{title}, step {label}")
  for name, value in result.items():
    run_files.write_json(os.path.join(out_dir, f"{name}.json"), value)
  return result
