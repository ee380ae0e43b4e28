"""Which of two values of a metric is better: one fact, said once.

A task states its headline metric's `mode` ("max": higher is better, accuracy;
"min": lower is better, loss). A value that is missing (null in a JSON file) or
not finite counts as the worst there is, so a diverged run is never the best.
Training (`final`/`best`), the checkpoint manager's best step and the sweep
report all rank with these functions.
"""

import math
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")
MODES = ("max", "min")


def worst(mode: str) -> float:
  """The score of a missing or non-finite value: -inf for "max", +inf for "min"."""
  if mode not in MODES:
    raise ValueError(f"mode={mode!r}; valid: {', '.join(MODES)}.")
  return -math.inf if mode == "max" else math.inf


def score(value: Any, mode: str) -> float:
  """`value` as a comparable number; missing or non-finite is `worst(mode)`."""
  if (value is None or isinstance(value, bool)
      or not isinstance(value, (int, float)) or not math.isfinite(value)):
    return worst(mode)
  return float(value)


def best(items: Iterable[T], key: Callable[[T], Any], mode: str) -> T | None:
  """The item whose `key` scores best by `mode`; ties go to the latest item (as
  the checkpoint manager's BestN policy keeps the later step). None if empty."""
  items = list(items)
  if not items:
    return None
  pick = max if mode == "max" else min
  return pick(reversed(items), key=lambda item: score(key(item), mode))


def reaches(value: Any, level: float, mode: str) -> bool:
  """Whether `value` is at `level` or better by `mode` (a missing or non-finite
  value never is)."""
  s = score(value, mode)
  return math.isfinite(s) and (s >= level if mode == "max" else s <= level)
