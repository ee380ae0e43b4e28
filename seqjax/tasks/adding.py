"""The adding problem (Hochreiter & Schmidhuber 1997, "Long Short-Term Memory",
experiment 4), in the form of Le, Jaitly & Hinton 2015, "A Simple Way to
Initialize Recurrent Networks of Rectified Linear Units".

Inputs [B, L, 2] (L is the papers' T): channel 0 holds values drawn uniformly
from [0, 1], channel 1 is a marker channel with exactly two ones, one at a
uniform position in each half of the sequence (first in [0, L/2), second in
[L/2, L)). The target is the sum of the two marked values, regressed at the last
position (mean squared error). The dependency length is up to L: the first
marked value may sit at position 0.

Always predicting 1 (the mean of the sum) gives MSE Var(u1 + u2) = 2/12 = 1/6:
the chance level. "Solved" is MSE <= 0.01, 6% of that baseline, fixed before any
run.
"""

import dataclasses

import jax
import jax.numpy as jnp

from seqjax import configs
from seqjax.errors import ConfigError
from seqjax.tasks import base


@dataclasses.dataclass(frozen=True)
class Adding:
  """Attributes are the `config.task` fields of `adding`."""
  length: int = 200       # L (the papers' T): sequence length, longest dependency

  loss = "mse"
  metric = "mse"          # squared error of the sum, at the last position
  mode = "min"
  chance = 1.0 / 6.0      # MSE of always predicting 1
  solved_level = 0.01    # "solved", fixed before any run (the docstring)
  baselines = {"predict_one": dict(
      value=1.0 / 6.0, metric="mse",
      what="always predict 1, the mean of the sum: Var(u1 + u2) = 2/12")}

  def __post_init__(self):
    configs.check_positive("task", length=self.length)
    if self.length < 2:
      raise ConfigError(
          f"task.length must be at least 2 (a marker in each half), got {self.length}.")

  @property
  def io(self) -> base.IOSpec:
    return base.IOSpec(kind="classify", length=self.length, output_size=1,
                       input_features=2)

  def batch(self, key, batch_size: int):
    t, half = self.length, self.length // 2
    k_values, k_first, k_second = jax.random.split(key, 3)
    values_BxL = jax.random.uniform(k_values, (batch_size, t))
    first_B = jax.random.randint(k_first, (batch_size,), 0, half)
    second_B = jax.random.randint(k_second, (batch_size,), half, t)
    positions_1xL = jnp.arange(t)[None, :]
    markers_BxL = ((positions_1xL == first_B[:, None]) |
                   (positions_1xL == second_B[:, None])).astype(jnp.float32)
    sum_B = jnp.sum(values_BxL * markers_BxL, axis=-1)
    return dict(
        inputs=jnp.stack([values_BxL, markers_BxL], axis=-1),
        targets=jnp.broadcast_to(sum_B[:, None, None], (batch_size, t, 1)),
        mask=base.last_position_mask(batch_size, t))

  def metrics(self, outputs_BxLx1, batch):
    mse = base.mean_squared_error(outputs_BxLx1, batch["targets"], batch["mask"])
    return dict(loss=mse, mse=mse)
