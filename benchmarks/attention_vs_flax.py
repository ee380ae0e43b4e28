"""Our decoder-only transformer against the same model built from Flax's
`nn.MultiHeadDotProductAttention`, timed side by side in one run.

  python -m benchmarks.attention_vs_flax --batch=32 --length=256 --width=256 \
      --layers=2 --vocab=16 --steps=10 [--torch]

Both models: heads = width / 64, MLP 4 x width with GELU (tanh form), pre-LN, final
LN, sinusoidal positions, the shared embedding and head, seqjax's own train step
(`benchmarks/step_time.py`). They differ only in the attention layer: ours (one
fused q/k/v projection, `jax.nn.dot_product_attention`) or Flax's (three
projections, its own einsum attention). The two compiled steps are timed one step
each in turn (medians reported), so the load of a shared machine hits both alike. With --torch, PyTorch's CPU
`nn.TransformerEncoder` (same sizes, causal mask, AdamW step) is timed too, if
torch is installed (it is never a dependency of seqjax). Prints one JSON line.
"""

import dataclasses

from absl import app
from absl import flags
import flax.linen as nn
import jax.numpy as jnp

from benchmarks import machine
from benchmarks import step_time
from seqjax.models import positional
from seqjax.models.common import SequenceModel
from seqjax.models.transformer import Mlp

# --batch --length --width --layers --vocab --steps are step_time's flags.
FLAGS = flags.FLAGS
_TORCH = flags.DEFINE_bool("torch", False, "Also time PyTorch, if installed.")


class FlaxAttentionBackbone(nn.Module):
  """Pre-LN decoder-only stack with `nn.MultiHeadDotProductAttention`."""
  width: int
  num_layers: int

  @nn.compact
  def __call__(self, x_BxLxD, *, train: bool = False, decode: bool = False):
    del train, decode
    length = x_BxLxD.shape[1]
    x_BxLxD = x_BxLxD + positional.sinusoidal(jnp.arange(length), self.width)[None]
    mask = nn.make_causal_mask(jnp.ones(x_BxLxD.shape[:2]))
    for _ in range(self.num_layers):
      h = nn.LayerNorm()(x_BxLxD)
      x_BxLxD = x_BxLxD + nn.MultiHeadDotProductAttention(
          num_heads=self.width // 64, deterministic=True)(h, h, mask=mask)
      x_BxLxD = x_BxLxD + Mlp(4)(nn.LayerNorm()(x_BxLxD))
    return nn.LayerNorm()(x_BxLxD)


def torch_step(batch, length, width, layers, vocab):
  """One training step of PyTorch's nn.TransformerEncoder (pre-LN, GELU, causal),
  AdamW after clipping, as a callable; None if torch is not installed."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  torch.manual_seed(0)
  layer = torch.nn.TransformerEncoderLayer(
      width, width // 64, 4 * width, dropout=0.0, activation="gelu",
      batch_first=True, norm_first=True)
  mask = torch.nn.Transformer.generate_square_subsequent_mask(length)
  return step_time.torch_lm_step(
      lambda: torch.nn.TransformerEncoder(layer, layers,
                                          norm=torch.nn.LayerNorm(width),
                                          enable_nested_tensor=False),
      lambda encoder, x: encoder(x, mask=mask, is_causal=True),
      batch, length, width, vocab)


def main(argv):
  del argv
  machine.setup()
  b, l, d, n, v = FLAGS.batch, FLAGS.length, FLAGS.width, FLAGS.layers, FLAGS.vocab
  ours_cfg = step_time.model_section(
      "transformer", d, n, f"num_heads={d // 64},mlp_ratio=4,norm=pre,"
      "positional=sinusoidal,attention_impl=xla")
  ours = step_time.make_experiment(ours_cfg, l, v, b)
  flax_model = SequenceModel(io=ours.task.io, width=d,
                             backbone=FlaxAttentionBackbone(d, n))
  theirs = dataclasses.replace(ours, model=flax_model)
  torch = (lambda: torch_step(b, l, d, n, v)) if _TORCH.value else None
  result = step_time.compare(
      {"seqjax": step_time.jax_step(ours), "flax_mha": step_time.jax_step(theirs)},
      torch, FLAGS.steps, batch=b, length=l, width=d, layers=n, heads=d // 64)
  machine.emit(result)


if __name__ == "__main__":
  app.run(main)
