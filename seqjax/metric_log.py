"""Metrics written three ways: DIR/metrics.jsonl, TensorBoard events, a console bar."""

import json
import os

import tensorboardX
import tqdm

from seqjax import strict_json


class MetricLog:
  """Appends metrics of a run that resumes at `start_step`.

  Lines of metrics.jsonl after `start_step` (written by a run killed after its
  last checkpoint) are dropped, so a resumed run's file equals an uninterrupted
  one; a run that starts afresh (step 0, whose evaluation it logs again) drops
  every line.
  """

  def __init__(self, workdir: str, start_step: int, total_steps: int,
               progress: bool = True, write: bool = True):
    """`write=False` (processes other than 0) keeps records in memory only."""
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.records = [r for r in read(self.path)
                    if start_step and r["step"] <= start_step]
    self._write = write
    self._bar = tqdm.tqdm(total=total_steps, initial=start_step,
                          disable=not progress, mininterval=1.0, dynamic_ncols=True)
    if not write:
      return
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(strict_json.dumps(r) + "\n" for r in self.records)
    os.replace(tmp, self.path)
    self._file = open(self.path, "a")
    self._tb = tensorboardX.SummaryWriter(
        os.path.join(workdir, "tb"), purge_step=start_step + 1 if start_step else 0)

  def write(self, step: int, split: str, metrics: dict) -> None:
    record = {"step": step, "split": split,
              **{k: float(v) for k, v in metrics.items()}}
    self.records.append(record)
    if not self._write:
      return
    self._file.write(strict_json.dumps(record) + "\n")
    self._file.flush()
    for name, value in metrics.items():
      self._tb.add_scalar(f"{split}/{name}", float(value), step)

  def progress(self, step: int, **shown) -> None:
    self._bar.update(step - self._bar.n)
    if shown:
      self._bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()},
                            refresh=False)

  def close(self) -> None:
    self._bar.close()
    if not self._write:
      return
    self._file.close()
    self._tb.close()


def read(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:  # a line cut short by a killed run
        pass
  return records
