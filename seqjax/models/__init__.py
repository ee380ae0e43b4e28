"""Models by name. Each entry is a frozen config dataclass whose fields are the
`config.model` keys of that model and whose `build(io)` returns the Flax module."""

import flax.linen as nn
import ml_collections

from seqjax import configs
from seqjax.interfaces import IOSpec
from seqjax.models import two_tower
from seqjax.models.dvae import DVAEConfig
from seqjax.models.encdec import TransformerEncDecConfig
from seqjax.models.linear_recurrence import LRUConfig
from seqjax.models.linear_recurrence import MinGRUConfig
from seqjax.models.recurrent import GRUConfig
from seqjax.models.recurrent import LSTMConfig
from seqjax.models.recurrent import RNNConfig
from seqjax.models.rnn_encdec import RNNEncDecConfig
from seqjax.models.selective import MambaConfig
from seqjax.models.selective import RGLRUConfig
from seqjax.models.transformer import TransformerConfig
from seqjax.models.vit import ViTConfig
from seqjax.models.window import WindowConfig

MODELS: dict[str, type] = {
    "window": WindowConfig,
    "rnn": RNNConfig,
    "lstm": LSTMConfig,
    "gru": GRUConfig,
    "lru": LRUConfig,
    "mingru": MinGRUConfig,
    "mamba": MambaConfig,
    "rglru": RGLRUConfig,
    "transformer": TransformerConfig,
    "transformer_encdec": TransformerEncDecConfig,
    "rnn_encdec": RNNEncDecConfig,
    "vit": ViTConfig,
    "dvae": DVAEConfig,
}
# The models whose decoding state is a recurrence (a fixed-size state carried
# from step to step): the ones with a state Jacobian (seqjax.diagnostics).
RECURRENT = ("rnn", "lstm", "gru", "lru", "mingru", "mamba", "rglru")


def build(cfg: ml_collections.ConfigDict, io: IOSpec) -> nn.Module:
  """The model of `cfg` for a task's `io`; a pair task (`io.pair`) gets the
  model as the shared encoder of a two-tower classifier."""
  model_cfg = configs.to_dataclass(MODELS, cfg, "model")
  if io.pair:
    return two_tower.build(model_cfg, io)
  return model_cfg.build(io)


def model_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """The `config.model` section for model `name`, defaults updated by `overrides`."""
  return configs.section(name, MODELS, "model", **overrides)
