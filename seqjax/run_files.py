"""The files of a run directory, written atomically.

  DIR/config.json     the resolved config; a later launch must match it.
  DIR/metrics.jsonl   one JSON object per log or eval step: step, split, metrics.
  DIR/summary.json    status, step, metric, chance, final, best, test, num_params, ...
  DIR/tb/             TensorBoard event files.
  DIR/checkpoints/    Orbax checkpoints (seqjax.checkpoints).
  DIR/trial.json      a sweep's trial only: overrides, axis, group log (seqjax.sweep).
"""

import json
import os
import uuid

import ml_collections

from seqjax import strict_json
from seqjax.errors import ConfigError

FINAL = ("completed", "diverged")  # the statuses of a finished run's summary


def config_dict(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json())


def check(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Refuses an unwritable workdir or one that holds a run of another config.

  Writes nothing.
  """
  check_writable(workdir)
  stored, given = read_json(os.path.join(workdir, "config.json")), config_dict(config)
  if stored is not None and stored != given:
    raise ConfigError(
        f"--workdir={workdir!r} holds a run of a different config (keys that "
        f"differ: {', '.join(sorted(_diff(stored, given)))}). Refusing to "
        "overwrite it; use a new workdir, or the same config to resume.")


def check_writable(workdir: str) -> None:
  """Refuses a workdir that is a file, lies under one, has a name too long for
  its file system, or cannot be written. Writes nothing."""
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(f"--workdir={workdir!r} exists and is not a directory.")
  existing = check_name_length(workdir)
  if not os.path.isdir(existing):
    raise ConfigError(f"--workdir={workdir!r} lies under {existing!r}, which is "
                      "not a directory.")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ConfigError(
        f"--workdir={workdir!r} is not writable ({existing!r} does not allow "
        "writing); choose a directory you can write to.")


def check_name_length(workdir: str) -> str:
  """Refuses a component of `workdir` longer than the file system of its nearest
  existing ancestor allows (NAME_MAX); returns that ancestor."""
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  limit = os.pathconf(existing, "PC_NAME_MAX")
  for part in os.path.abspath(workdir).split(os.sep):
    if len(os.fsencode(part)) > limit:
      raise ConfigError(
          f"--workdir={workdir!r}: the name {part[:40]!r}... is "
          f"{len(os.fsencode(part))} bytes; the file system allows at most "
          f"{limit} bytes per name.")
  return existing


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
  out = []
  for key in set(a) | set(b):
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      out += _diff(va, vb, f"{prefix}{key}.")
    elif va != vb:
      out.append(f"{prefix}{key} ({va!r} -> {vb!r})")
  return out


def init(workdir: str, config: ml_collections.ConfigDict) -> None:
  os.makedirs(workdir, exist_ok=True)
  write_json(os.path.join(workdir, "config.json"), config_dict(config))


def write_json(path: str, obj) -> None:
  """Writes `obj` as strict JSON (`strict_json`) to `path` (`write_text`)."""
  write_text(path, strict_json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically (a reader never sees half a file): to a
  new file beside it, created with the permissions the umask gives, then
  renamed over it."""
  tmp = f"{path}.{uuid.uuid4().hex}.tmp"
  with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w") as f:
    f.write(text)
  os.replace(tmp, path)


def read_json(path: str):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  stored = read_json(os.path.join(workdir, "config.json"))
  if stored is None:
    raise ConfigError(f"--workdir={workdir!r} holds no run (no config.json).")
  return ml_collections.ConfigDict(stored)
