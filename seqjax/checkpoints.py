"""Orbax checkpoints under DIR/checkpoints/: save, resume, restore a trained model.

The manager keeps the last `keep_checkpoints` steps plus the best one by the
task's headline eval metric. A checkpoint that fails to restore is moved aside to
DIR/corrupt_checkpoints/<step> with a warning (never deleted), and the previous
good one is used.
"""

import dataclasses
import os
import shutil
from typing import Any

from absl import logging
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from seqjax.errors import ConfigError


def manager(workdir: str, keep: int, metric: str, mode: str,
            read_only: bool = False) -> ocp.CheckpointManager:
  best = pp.BestN(get_metric_fn=lambda m: m[metric], reverse=(mode == "min"),
                  n=1, keep_checkpoints_without_metrics=False)
  options = ocp.CheckpointManagerOptions(
      preservation_policy=pp.AnyPreservationPolicy([pp.LatestN(n=keep), best]),
      cleanup_tmp_directories=not read_only, read_only=read_only, create=not read_only)
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "checkpoints")), options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any,
         metrics: dict | None) -> None:
  mngr.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)


def restore_latest(mngr: ocp.CheckpointManager, abstract_state: Any):
  """Restores the newest checkpoint that loads; returns (state, step) or (None, 0)."""
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      return mngr.restore(step, args=ocp.args.StandardRestore(abstract_state)), step
    except Exception as e:  # pylint: disable=broad-except
      _set_aside(mngr, step, e)
  return None, 0


def _set_aside(mngr, step: int, error: Exception) -> None:
  src = os.path.join(str(mngr.directory), str(step))
  dst = os.path.join(os.path.dirname(str(mngr.directory)), "corrupt_checkpoints",
                     str(step))
  logging.warning("Checkpoint %s does not restore (%s: %s); moved it to %s and "
                  "trying the previous one.", src, type(error).__name__,
                  str(error).splitlines()[0] if str(error) else "", dst)
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  shutil.move(src, dst + ("" if not os.path.exists(dst) else f".{os.getpid()}"))
  mngr.reload()


@dataclasses.dataclass
class Restored:
  """A trained model restored from a workdir, for use in a notebook.

  `model.apply({"params": params}, inputs)` runs it; `task.batch(key, n)` makes data.
  """
  config: Any
  task: Any
  model: Any
  params: Any
  step: int


def load(workdir: str, step: int | None = None) -> Restored:
  """Restores config and parameters from `workdir`: checkpoint `step`, else the
  best by the task's headline eval metric, else the latest."""
  from seqjax import train  # pylint: disable=import-outside-toplevel
  from seqjax import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  config = workdir_lib.load_config(workdir)
  exp = train.build(config)
  mngr = manager(workdir, exp.train.keep_checkpoints, exp.task.metric,
                 exp.task.mode, read_only=True)
  steps = mngr.all_steps()
  if not steps:
    raise ConfigError(f"--workdir={workdir!r} holds no checkpoint.")
  if step is None:
    step = mngr.best_step() or mngr.latest_step()
  elif step not in steps:
    raise ConfigError(f"--step={step} has no checkpoint in {workdir!r}; "
                      f"available: {sorted(steps)}.")
  state = mngr.restore(step, args=ocp.args.StandardRestore(train.abstract_state(exp)))
  mngr.close()
  return Restored(config, exp.task, exp.model, state.params, int(step))


def load_params(workdir: str, step: int | None = None) -> Any:
  """The parameters of a run as saved (a tree of arrays), without building its
  model or task: for a run that another run reads, such as the image tokenizer of
  `text_to_image`. Checkpoint `step`, else the latest."""
  mngr = manager(workdir, 1, "loss", "min", read_only=True)
  steps = mngr.all_steps()
  if not steps:
    raise ConfigError(f"{workdir!r} holds no checkpoint.")
  state = mngr.restore(max(steps) if step is None else step,
                       args=ocp.args.StandardRestore())
  mngr.close()
  return state["params"]
