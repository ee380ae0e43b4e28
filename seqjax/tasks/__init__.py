"""Tasks by name. `build(config.task)` returns the typed task; see `base` for the
interface every task provides."""

import ml_collections

from seqjax import configs
from seqjax.tasks.aan import Aan
from seqjax.tasks.adding import Adding
from seqjax.tasks.associative_recall import AssociativeRecall
from seqjax.tasks.cifar10 import Cifar10
from seqjax.tasks.copy_memory import CopyMemory
from seqjax.tasks.flip_flop import FlipFlop
from seqjax.tasks.imdb import Imdb
from seqjax.tasks.induction_heads import InductionHeads
from seqjax.tasks.listops import ListOps
from seqjax.tasks.pathfinder import Pathfinder
from seqjax.tasks.reverse import Reverse
from seqjax.tasks.selective_copy import SelectiveCopy
from seqjax.tasks.sequential_digits import SequentialDigits
from seqjax.tasks.text_to_image import TextToImage
from seqjax.tasks.vqvae_digits import VQVAEDigits
from seqjax.tasks.text import Text

TASKS: dict[str, type] = {
    "copy_memory": CopyMemory,
    "adding": Adding,
    "selective_copy": SelectiveCopy,
    "associative_recall": AssociativeRecall,
    "induction_heads": InductionHeads,
    "flip_flop": FlipFlop,
    "listops": ListOps,
    "pathfinder": Pathfinder,
    "reverse": Reverse,
    "sequential_digits": SequentialDigits,
    "text_to_image": TextToImage,
    "vqvae_digits": VQVAEDigits,
    "text": Text,
    "imdb": Imdb,
    "aan": Aan,
    "cifar10": Cifar10,
}


def build(cfg: ml_collections.ConfigDict):
  return configs.to_dataclass(TASKS, cfg, "task")


def task_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """The `config.task` section for task `name`, defaults updated by `overrides`."""
  return configs.section(name, TASKS, "task", **overrides)
