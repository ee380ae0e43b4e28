"""Orbax checkpoints under DIR/checkpoints/: save, resume, restore a trained model.

The manager keeps the last `keep_checkpoints` steps plus the best one by the
task's headline eval metric. Before a checkpoint is restored its stored tree
(leaf paths, shapes and dtypes, read from Orbax's metadata without reading the
arrays) is compared with the state the current code builds:

- a checkpoint that cannot be read (files missing or cut short) is moved aside to
  DIR/corrupt_checkpoints/<step> with a warning (never deleted), and the
  previous one is tried;
- a checkpoint that reads but does not match the state (the model's code
  changed) stops with a ConfigError saying which leaves differ: setting it aside
  would set every checkpoint aside and silently restart from step 0.
"""

import asyncio
import contextlib
import os
import re
import shutil
from typing import Any

from absl import logging
from etils import epath
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from seqjax import metric_log
from seqjax import scores
from seqjax.errors import ConfigError

ITEM = "default"  # the item directory of a single-item checkpoint manager


class Unreadable(Exception):
  """A checkpoint whose files cannot be read."""


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
  """Restores the newest checkpoint that reads; returns (state, step) or (None, 0).

  Raises ConfigError for a checkpoint that does not match `abstract_state`.
  """
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      return restore(mngr, step, abstract_state), step
    except Unreadable as e:  # set aside, never deleted; the previous is tried
      src = os.path.join(str(mngr.directory), str(step))
      dst = os.path.join(os.path.dirname(str(mngr.directory)),
                         "corrupt_checkpoints", str(step))
      logging.warning("Checkpoint %s does not restore (%s); moved it to %s and "
                      "trying the previous one.", src, reason(e, src), dst)
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      shutil.move(src, dst + ("" if not os.path.exists(dst) else f".{os.getpid()}"))
      mngr.reload()
  return None, 0


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state: Any):
  """Checkpoint `step` restored into `abstract_state`'s shapes and shardings.

  Raises Unreadable for missing or damaged files, ConfigError for a stored tree
  that differs from `abstract_state`.
  """
  path = os.path.join(str(mngr.directory), str(step))
  try:  # the stored tree, from the metadata only
    metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(path) / ITEM)
  except (OSError, ValueError) as e:  # missing files; JSON cut short
    raise Unreadable(f"{path}: {type(e).__name__}") from e
  stored = leaves(metadata)
  if not stored:
    raise Unreadable(f"{path}: its metadata lists no arrays")
  check_matches(path, stored, leaves(abstract_state))
  try:
    with _reads_finished():
      return mngr.restore(step, args=ocp.args.StandardRestore(abstract_state))
  except Exception as e:  # pylint: disable=broad-except
    # The tree matches, so what fails is reading the arrays: TensorStore raises
    # a bare Exception for a chunk cut short, ValueError for a missing one.
    raise Unreadable(f"{path}: {type(e).__name__}") from e


class _FinishingLoop(asyncio.SelectorEventLoop):
  """An event loop that, when closed, first runs its unfinished tasks to the end.

  Orbax reads the arrays of a checkpoint as tasks gathered on a fresh event
  loop (`orbax.checkpoint._src.asyncio_utils.run_sync`) and closes that loop as
  soon as the first read fails, with the other reads still pending: they then
  fail at exit, each printing a traceback with its whole TensorStore spec
  ("Exception ignored in: <coroutine object _read_array_index_and_device_put>",
  "RuntimeError: Event loop is closed"). Here each of them ends, its error
  collected, before the loop closes.
  """

  def close(self):
    pending = [t for t in asyncio.all_tasks(self) if not t.done()]
    if pending and not self.is_running() and not self.is_closed():
      self.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    super().close()


class _FinishingPolicy(asyncio.DefaultEventLoopPolicy):
  _loop_factory = _FinishingLoop


@contextlib.contextmanager
def _reads_finished():
  """Event loops created inside are `_FinishingLoop`s."""
  previous = asyncio.get_event_loop_policy()
  asyncio.set_event_loop_policy(_FinishingPolicy())
  try:
    yield
  finally:
    asyncio.set_event_loop_policy(previous)


def leaves(tree) -> dict[str, tuple]:
  """{leaf path "params/backbone/...": (shape, dtype)} of a state or of Orbax
  metadata (dataclass fields, named tuples and dicts all read as names)."""
  def name(key):
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        return str(getattr(key, attr))
    return str(key)
  return {"/".join(map(name, path)): (tuple(x.shape), str(x.dtype))
          for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_matches(path: str, stored: dict, expected: dict) -> None:
  """Raises ConfigError naming the leaves whose presence, shape or dtype differ."""
  diffs = [f"{k}: stored {stored.get(k, 'nothing')}, expected "
           f"{expected.get(k, 'nothing')}"
           for k in sorted(set(stored) | set(expected),
                           key=lambda k: (not k.startswith("params/"), k))
           if stored.get(k) != expected.get(k)]
  if diffs:
    shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more"
                                    if len(diffs) > 5 else "")
    raise ConfigError(
        f"Checkpoint {path} does not match the state the current code builds "
        f"({len(diffs)} leaves differ: {shown}). Did the model's code change? "
        "Restore it with the code that wrote it, or start a new workdir.")


def reason(error: BaseException, directory: str = "") -> str:
  """Why checkpoint `directory` does not read, in one line: the innermost error
  of the chain (TensorStore's names the array and the file, here relative to
  `directory`), without the TensorStore spec that Orbax's own message carries."""
  while error.__cause__ is not None:
    error = error.__cause__
  text = (str(error).splitlines() or [""])[0].split(
      " See full TensorStore details")[0]
  match = re.search(r'Error reading "([^"/]+)[^"]*" in OCDBT database at local '
                    r'file "([^"]+)"(?::\s*(.*))?', text)
  if not match:
    return f"{type(error).__name__}: {text}"
  array, where, why = match.groups()
  if directory:
    where = os.path.relpath(where, directory) + "/"
  return f"its array {array} in {where} does not read ({why or text})"


def best_step(workdir: str, steps, task) -> int | None:
  """Of the checkpointed `steps`, the best by the task's headline metric on the
  validation stream (DIR/metrics.jsonl; `scores.best`: ties go to the later
  step, as the manager's BestN policy keeps), or None if none was evaluated."""
  evals = [r for r in metric_log.read(os.path.join(workdir, "metrics.jsonl"))
           if r["split"] == "eval" and r["step"] in steps]
  best = scores.best(evals, lambda r: r.get(task.metric), task.mode)
  return None if best is None else best["step"]


def load_params(workdir: str, step: int | None = None) -> Any:
  """The parameters of a run as saved (a tree of arrays), without building its
  model or task: for a run that another run reads, such as the image tokenizer of
  `text_to_image`. Checkpoint `step`, else the latest."""
  mngr = manager(workdir, 1, "loss", "min", read_only=True)
  steps = mngr.all_steps()
  if not steps:
    raise ConfigError(f"{workdir!r} holds no checkpoint.")
  with _reads_finished():
    state = mngr.restore(max(steps) if step is None else step,
                         args=ocp.args.StandardRestore())
  mngr.close()
  return state["params"]
