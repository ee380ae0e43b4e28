"""Mixed precision: bfloat16 compute, float32 parameters, and it still trains."""

import jax
import jax.numpy as jnp
import pytest

from seqjax import experiment
from seqjax import precision
from seqjax import train


def test_cast_keeps_numerics_sensitive_parameters_float32():
  params = {"embed": {"embedding": jnp.ones((3, 2))},
            "layer_0": {"w_in": jnp.ones((2, 8)), "w_rec": jnp.ones((2, 8))},
            "LayerNorm_0": {"scale": jnp.ones(2), "bias": jnp.ones(2)},
            "lru": {"nu_log": jnp.ones(2)}, "count": jnp.ones((), jnp.int32)}
  cast = precision.cast_params(params, jnp.bfloat16)
  dtypes = jax.tree_util.tree_map(lambda x: x.dtype.name, cast)
  assert dtypes == {"embed": {"embedding": "bfloat16"},
                    "layer_0": {"w_in": "bfloat16", "w_rec": "float32"},
                    "LayerNorm_0": {"scale": "float32", "bias": "float32"},
                    "lru": {"nu_log": "float32"}, "count": "int32"}


@pytest.mark.slow
def test_bfloat16_trains_copy_memory_like_float32(tiny_config, tmp_path):
  tiny_config.train.update(steps=300, eval_every=300, checkpoint_every=300,
                           log_every=100, eval_batches=4, batch_size=16)
  tiny_config.model.width = 32
  full = train.train_and_evaluate(tiny_config, str(tmp_path / "f32"), progress=False)
  tiny_config.train.compute_dtype = "bfloat16"
  half = train.train_and_evaluate(tiny_config, str(tmp_path / "bf16"), progress=False)
  state = experiment.init_state(experiment.build(tiny_config))
  assert jax.tree_util.tree_leaves(state.params)[0].dtype == jnp.float32
  for summary in (full, half):
    assert summary["status"] == "completed"
  # Both learn the task: far below the memoryless loss and far above chance.
  # bfloat16 rounding makes the curves differ in detail (0.040 vs 0.035 final
  # loss when this was written), so the two are compared within a factor 2.
  baseline = experiment.build(tiny_config).task.baseline_loss
  for summary in (full, half):
    assert summary["final"]["loss"] < 0.5 * baseline
    assert summary["final"]["accuracy"] > summary["chance"] + 0.25
  assert half["final"]["loss"] < 2 * full["final"]["loss"]
