"""Mixed precision: compute in bfloat16, keep parameters and optimizer state float32.

`train.compute_dtype="bfloat16"` casts a copy of the float32 parameters to
bfloat16 inside the jitted step, so matmuls and activations run in bfloat16;
gradients flow back through the cast and the update is applied to the float32
master copy. What numerics demand stays float32:
  * parameters whose path matches `KEEP_FLOAT32` (normalisation scales and
    biases, the transformers' `ln_*` layers included; recurrent matrices;
    eigenvalue and decay parameters of linear recurrences: the LRU's
    nu/theta/gamma, Mamba's A_log and dt_bias, the RG-LRU's Lambda):
    operations that touch them promote to float32, so recurrent state updates and
    normalisation run in float32;
  * the loss: logits are cast to float32 before the softmax (tasks/base.py), and
    attention softmax runs in float32 inside the attention code.
"""

import re

import jax
import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
KEEP_FLOAT32 = re.compile(
    r"norm|(^|/)ln_|scale|w_rec|recurrent|nu_log|theta_log|gamma_log|lambda|A_log|"
    r"dt_bias",
    re.IGNORECASE)


def cast_params(params, dtype):
  """A compute copy of `params` in `dtype`, float32 where `KEEP_FLOAT32` says."""
  if dtype == jnp.float32:
    return params

  def cast(path, x):
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    if KEEP_FLOAT32.search(name) or not jnp.issubdtype(x.dtype, jnp.floating):
      return x
    return x.astype(dtype)

  return jax.tree_util.tree_map_with_path(cast, params)


def cast_inputs(batch: dict, dtype) -> dict:
  """Real-valued model inputs in the compute dtype; token ids unchanged."""
  return {k: v.astype(dtype) if k == "inputs" and jnp.issubdtype(
      v.dtype, jnp.floating) else v for k, v in batch.items()}
