"""Every model in the table, by construction: a new entry of `models.MODELS` is
checked here without being listed.

For each model and each task kind it serves (at least one): the output shape;
for a causal (`lm`) model, the full call equals decoding token by token and the
output at position t has exactly zero gradient from inputs after t; for an
encoder-decoder, greedy generation agrees with the teacher-forced call fed its
own tokens. Also the mixed-precision policy on every model's real parameters.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from seqjax import models
from seqjax import precision
from seqjax.errors import ConfigError
from seqjax.interfaces import IOSpec

B, L, T, V = 2, 6, 5, 7
# One IOSpec per task kind; the classify one twice (token ids, and features as
# patches for the ViT).
IOS = {
    "lm": IOSpec(kind="lm", length=L, output_size=V, input_vocab=V),
    "classify": IOSpec(kind="classify", length=L, output_size=3, input_vocab=V),
    "classify_features": IOSpec(kind="classify", length=4, output_size=3,
                                input_features=16),
    "seq2seq": IOSpec(kind="seq2seq", length=L, output_size=V, input_vocab=V,
                      target_length=T, bos_id=V, eos_id=V - 1),
    "autoencode": IOSpec(kind="autoencode", length=16, output_size=4,
                         input_features=4, target_length=64),
}
SMALL = dict(width=8, num_layers=1, num_heads=2, mlp_ratio=2, state_size=4,
             rnn_width=8, window=3, hidden=8, code_width=4, codebook_size=8)


def small(name: str):
  cls = models.MODELS[name]
  fields = {f.name for f in dataclasses.fields(cls)}
  return cls(**{k: v for k, v in SMALL.items() if k in fields})


def served(name: str) -> list[str]:
  """The kinds in IOS that model `name` builds for (the others: ConfigError)."""
  kinds = []
  for kind, io in IOS.items():
    try:
      small(name).build(io)
    except ConfigError:
      continue
    kinds.append(kind)
  return kinds


def inputs(io: IOSpec, key, length=None):
  length = length or io.length
  if io.input_vocab is not None:
    return jax.random.randint(key, (B, length), 0, io.input_vocab)
  return jax.random.normal(key, (B, length, io.input_features))


CASES = [(name, kind) for name in sorted(models.MODELS) for kind in served(name)]


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_model_serves_some_task_kind(name):
  assert served(name), f"{name} builds for none of {sorted(IOS)}"


@pytest.mark.parametrize("name,kind", CASES)
def test_output_shape(name, kind):
  io = IOS[kind]
  model = small(name).build(io)
  key = jax.random.key(0)
  args = (inputs(io, key),)
  if kind == "seq2seq":
    args += (jax.random.randint(key, (B, T), 0, V),)
  params = model.init(key, *args)["params"]
  out = model.apply({"params": params}, *args)
  length = io.target_length if kind in ("seq2seq", "autoencode") else io.length
  assert out.shape == (B, length, io.output_size)


CAUSAL = [(name, kind) for name, kind in CASES if kind == "lm"]


def causal_model(name, kind):
  """(io, model, tokens) for a causal model: tokens drawn with key 1."""
  io = IOS[kind]
  return io, small(name).build(io), inputs(io, jax.random.key(1))


@pytest.mark.parametrize("name,kind", CAUSAL)
def test_full_call_equals_step_by_step_decoding(name, kind):
  io, model, tokens = causal_model(name, kind)
  params = model.init(jax.random.key(0), tokens)["params"]
  full = model.apply({"params": params}, tokens)
  cache = model.init(jax.random.key(0), tokens[:, :1], decode=True)["cache"]
  steps = []
  for t in range(io.length):
    out, updated = model.apply({"params": params, "cache": cache},
                               tokens[:, t:t + 1], decode=True, mutable=["cache"])
    cache = updated["cache"]
    steps.append(out)
  onp.testing.assert_allclose(jnp.concatenate(steps, axis=1), full,
                              rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,kind", CAUSAL)
def test_no_gradient_from_the_future(name, kind):
  io, model, tokens = causal_model(name, kind)
  variables = model.init(jax.random.key(0), tokens)
  zero = jax.tree_util.tree_map(jnp.zeros_like, variables["perturbations"])
  for t in range(io.length):
    grad = jax.grad(lambda p: jnp.sum(model.apply(
        {"params": variables["params"], "perturbations": p}, tokens)[:, t]))(zero)
    embedded_BxLxD = grad["embedded"]
    assert not jnp.any(embedded_BxLxD[:, t + 1:]), (name, t)
    assert jnp.any(embedded_BxLxD[:, t]), (name, t)  # the test can see a gradient


SEQ2SEQ = [(name, kind) for name, kind in CASES if kind == "seq2seq"]


@pytest.mark.parametrize("name,kind", SEQ2SEQ)
def test_greedy_generation_agrees_with_teacher_forcing(name, kind):
  io = IOS[kind]
  model = small(name).build(io)
  source = inputs(io, jax.random.key(1))
  params = model.init(jax.random.key(0), source,
                      jnp.zeros((B, T), jnp.int32))["params"]
  tokens_BxT = model.apply({"params": params}, source, method="generate",
                           max_length=T)
  fed_BxT = jnp.concatenate([jnp.full((B, 1), io.bos_id), tokens_BxT[:, :-1]], 1)
  logits = model.apply({"params": params}, source, fed_BxT)
  greedy_BxT = jnp.argmax(logits, axis=-1)
  # Up to and including the first EOS; after it, generation repeats EOS.
  ended_BxT = jnp.cumsum(tokens_BxT == io.eos_id, axis=1) - (
      tokens_BxT == io.eos_id) > 0
  assert jnp.all((greedy_BxT == tokens_BxT) | ended_BxT)


# Parameters that stay float32 under compute_dtype=bfloat16, written from what
# they are (not from the policy's pattern): normalisation scales and biases,
# recurrent matrices, and the decay parameters of the linear recurrences.
NORM_MODULES = ("LayerNorm", "RMSNorm", "norm", "ln_")
KEPT_LEAVES = ("w_rec", "nu_log", "theta_log", "gamma_log", "A_log", "dt_bias",
               "Lambda")


def should_stay_float32(path: tuple[str, ...]) -> bool:
  return (path[-1] in KEPT_LEAVES
          or any(p.startswith(NORM_MODULES) or p.endswith(("norm", "Norm"))
                 for p in path[:-1]))


@pytest.mark.parametrize("name,kind", [(n, served(n)[0])
                                       for n in sorted(models.MODELS)])
def test_bfloat16_policy_on_the_real_parameter_trees(name, kind):
  io = IOS[kind]
  model = small(name).build(io)
  args = (inputs(io, jax.random.key(1)),)
  if kind == "seq2seq":
    args += (jnp.zeros((B, T), jnp.int32),)
  params = model.init(jax.random.key(0), *args)["params"]
  cast = precision.cast_params(params, jnp.bfloat16)
  for path, x in jax.tree_util.tree_flatten_with_path(cast)[0]:
    names = tuple(str(getattr(k, "key", k)) for k in path)
    want = jnp.float32 if should_stay_float32(names) else jnp.bfloat16
    assert x.dtype == want, ("/".join(names), x.dtype)
