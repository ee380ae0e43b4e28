"""Rematerialisation trades compute for memory and changes nothing else."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from seqjax import models
from seqjax.interfaces import IOSpec
from seqjax.tasks.base import cross_entropy

pytestmark = pytest.mark.slow  # compiles the gradient of every remat model twice

IO = IOSpec(kind="lm", length=12, output_size=7, input_vocab=7)


@pytest.mark.parametrize("name, fields", [
    ("transformer", dict(width=16, num_heads=2, num_layers=2, dropout=0.1)),
])
def test_remat_gives_the_same_loss_and_gradients(name, fields):
  config = models.MODELS[name](**fields)
  plain = config.build(IO)
  remat = dataclasses.replace(config, remat=True).build(IO)
  tokens = jax.random.randint(jax.random.key(0), (3, IO.length), 0, 7)
  params = plain.init(jax.random.key(1), tokens)["params"]
  assert (jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
      remat.init(jax.random.key(1), tokens)["params"]))

  def loss(model, p):
    logits = model.apply({"params": p}, tokens, train=True,
                         rngs={"dropout": jax.random.key(2)})
    return cross_entropy(logits, tokens, jnp.ones(tokens.shape))

  (l0, g0), (l1, g1) = [jax.jit(jax.value_and_grad(lambda p, m=m: loss(m, p)))(params)
                        for m in (plain, remat)]
  onp.testing.assert_allclose(l1, l0, rtol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g0)):
    onp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
