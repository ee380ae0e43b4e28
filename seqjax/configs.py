"""Config helpers: the `key=value,...` argument of `get_config`, config sections
built from the typed dataclasses of models and tasks, and validation.

The model and the task never see a ConfigDict: `to_dataclass` turns a section
into the frozen dataclass that builds them, and rejects unknown keys.
"""

import dataclasses
import importlib.util
import math
import os
import traceback
from typing import Any

import ml_collections

from seqjax.errors import ConfigError

SCHEDULES = ("cosine", "constant")


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses `get_config`'s argument, `"model=lstm,delay=100,quick"`.

  A bare key (`quick`) means True. Values take the type of their default; a
  default that is a type (`delay=int`) means "None unless given". Keys without a
  default are refused with the list of allowed keys.
  """
  out = {k: None if isinstance(v, type) else v for k, v in defaults.items()}
  for key, value in split_arg(arg).items():
    if key not in defaults:
      raise ConfigError(
          f"Unknown config argument {key!r} in {arg!r}; allowed: "
          f"{', '.join(sorted(defaults))}.")
    out[key] = _convert(key, value, defaults[key])
  return ml_collections.ConfigDict(out)


def split_arg(arg: str | None) -> dict[str, str]:
  """`"model=lstm,quick"` -> {"model": "lstm", "quick": "true"}: the items of a
  `get_config` argument as strings, in order (a repeated key: the last)."""
  out = {}
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    out[key.strip()] = value.strip() if sep else "true"
  return out


def _convert(key: str, value: str, default: Any) -> Any:
  if isinstance(default, bool):
    if value.lower() not in ("true", "false", "1", "0"):
      raise ConfigError(f"Config argument {key}={value!r} must be true or false.")
    return value.lower() in ("true", "1")
  kind = default if isinstance(default, type) else type(default)
  try:
    return kind(value)
  except ValueError:
    raise ConfigError(
        f"Config argument {key}={value!r} must be a {kind.__name__}."
    ) from None


def load_module(path: str):
  """The experiment file `path` as a module; a missing file or one that does
  not run (a syntax error, an exception at import) is a ConfigError naming the
  file and line."""
  if not os.path.isfile(path):
    raise ConfigError(f"--config file {path!r} does not exist.")
  spec = importlib.util.spec_from_file_location("_experiment", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ConfigError(f"--config file {e.filename}, line {e.lineno}: "
                      f"SyntaxError: {e.msg}.") from None
  except Exception as e:  # pylint: disable=broad-except
    raise _failure(path, "loading it", e) from None
  return module


def get_config(module, arg: str | None) -> ml_collections.ConfigDict:
  """`module.get_config(arg)`; an exception other than ConfigError becomes one
  naming the file and line where it was raised."""
  try:
    return module.get_config(arg)
  except ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise _failure(module.__file__, f"get_config({arg!r})", e) from None


def _failure(path: str, doing: str, e: Exception) -> ConfigError:
  frames = traceback.extract_tb(e.__traceback__)
  here = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)]
  frame = (here or frames)[-1]
  return ConfigError(
      f"--config file {path}: {doing} raised {type(e).__name__}: {e} (at "
      f"{frame.filename}, line {frame.lineno}, in {frame.name}).")


def check_command_line(argv: list[str]) -> None:
  """Loads the `--config=PATH[:ARG]` file of `argv` (`load_module`, `get_config`:
  every failure a ConfigError naming the file) and refuses a `--config.KEY=VALUE`
  whose KEY the config lacks (`find_key`): one ConfigError before the flag
  parser runs the file again."""
  spec = next((a[len("--config="):] for a in argv if a.startswith("--config=")),
              None)
  if spec is None:
    return
  path, _, arg = spec.partition(":")
  config = get_config(load_module(path), arg or None)
  for item in argv:
    if item.startswith("--config."):
      key = item[len("--config."):].split("=", 1)[0]
      find_key(config, key, f"--config.{key}")


def find_key(config: ml_collections.ConfigDict, key: str, what: str) -> tuple:
  """(section, leaf) of the dotted `key` ("model.width") in `config`; else a
  ConfigError saying that `what` names no config key, with the keys of the
  deepest section of `key` that exists."""
  *parents, leaf = key.split(".")
  node, where = config, "config"
  for part in parents:
    if not isinstance(node.get(part), ml_collections.ConfigDict):
      break
    node, where = node[part], f"{where}.{part}"
  else:
    if leaf in node:
      return node, leaf
  raise ConfigError(f"{what} names no config key; keys allowed under {where}: "
                    f"{', '.join(sorted(node.keys()))}.")


def section(name: str, table: dict[str, type], where: str, **overrides: Any
            ) -> ml_collections.ConfigDict:
  """A config section `{name, field: default, ...}` from a dataclass in `table`."""
  cls = lookup(table, name, f"{where}.name")
  fields = {f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING}
  unknown = set(overrides) - set(fields)
  if unknown:
    raise ConfigError(
        f"Unknown keys {sorted(unknown)} for {name!r}; allowed: "
        f"{', '.join(sorted(fields))}.")
  fields.update(overrides)
  return ml_collections.ConfigDict({"name": name, **fields})


def lookup(table: dict[str, Any], name: str, what: str) -> Any:
  if name not in table:
    raise ConfigError(
        f"Unknown {what} {name!r}; valid: {', '.join(sorted(table))}.")
  return table[name]


def to_dataclass(table: dict[str, type], cfg: ml_collections.ConfigDict,
                 where: str) -> Any:
  """Builds the frozen dataclass named by `cfg.name` from the other keys."""
  cls = lookup(table, cfg.name, f"{where}.name")
  values = {k: v for k, v in cfg.items() if k != "name"}
  names = {f.name for f in dataclasses.fields(cls) if f.init}
  unknown = set(values) - names
  if unknown:
    raise ConfigError(
        f"Unknown keys {sorted(f'{where}.{k}' for k in unknown)} for "
        f"{where}.name={cfg.name!r}; allowed: {', '.join(sorted(names))}.")
  check_finite(where, values)
  return cls(**values)


def check_finite(where: str, values: dict) -> None:
  """Refuses a float value (or one inside a list) that is inf or nan."""
  for key, value in values.items():
    items = value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in items):
      raise ConfigError(f"{where}.{key}={value!r} is not a finite number; give "
                        "a finite value.")


def check_positive(where: str, **values: float) -> None:
  for key, value in values.items():
    if not value > 0:
      raise ConfigError(f"{where}.{key} must be positive, got {value!r}.")


def check_probability(where: str, **values: float) -> None:
  """Refuses a probability (a dropout rate, flip_flop's p_ignore) outside [0, 1)."""
  for key, value in values.items():
    if not 0 <= value < 1:
      raise ConfigError(f"{where}.{key} must be in [0, 1), got {value!r}.")


def check_choice(where: str, key: str, value: Any, allowed: tuple) -> None:
  if value not in allowed:
    raise ConfigError(
        f"{where}.{key}={value!r} is not allowed; choose one of "
        f"{', '.join(map(str, allowed))}.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """`config.train`, typed; the one definition of its fields and defaults
  (`train_defaults` is built from it). Experiments override what they need."""
  seed: int = 0
  steps: int = 1000
  batch_size: int = 32
  learning_rate: float = 1e-3   # peak learning rate of AdamW
  schedule: str = "cosine"      # cosine | constant, both after linear warmup
  warmup_steps: int = 100
  grad_clip: float = 1.0        # global-norm clipping; 0 disables it
  weight_decay: float = 0.0     # AdamW decoupled weight decay
  log_every: int = 50
  eval_every: int = 200
  eval_batches: int = 4         # held-out batches per evaluation
  checkpoint_every: int = 200
  keep_checkpoints: int = 2     # the last K, plus the best by the headline metric
  compute_dtype: str = "float32"  # float32 | bfloat16 (float32 parameters either way)
  stop_when_solved: bool = False  # a run whose validation metric reaches the level stops
  solved_level: float | None = None  # that level; None: the task's `solved_level`
  profile_steps: int = 0        # > 0: a jax.profiler trace of that many steps, DIR/profile/

  def __post_init__(self):
    check_positive("train", steps=self.steps, batch_size=self.batch_size,
                   learning_rate=self.learning_rate, log_every=self.log_every,
                   eval_every=self.eval_every, eval_batches=self.eval_batches,
                   checkpoint_every=self.checkpoint_every,
                   keep_checkpoints=self.keep_checkpoints)
    check_choice("train", "schedule", self.schedule, SCHEDULES)
    check_choice("train", "compute_dtype", self.compute_dtype,
                 ("float32", "bfloat16"))
    for key in ("warmup_steps", "grad_clip", "weight_decay", "profile_steps"):
      if getattr(self, key) < 0:
        raise ConfigError(
            f"train.{key} must be >= 0, got {getattr(self, key)!r}.")


def train_defaults() -> ml_collections.ConfigDict:
  """The `config.train` section with `TrainConfig`'s defaults (a field whose
  default is None takes a float when overridden)."""
  return ml_collections.ConfigDict({
      k: ml_collections.config_dict.placeholder(float) if v is None else v
      for k, v in dataclasses.asdict(TrainConfig()).items()})


def train_config(cfg: ml_collections.ConfigDict) -> TrainConfig:
  return to_dataclass({"train": TrainConfig}, ml_collections.ConfigDict(
      {"name": "train", **cfg.to_dict()}), "train")
