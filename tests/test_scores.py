"""The one ranking rule: best by mode, non-finite and missing count as worst."""

import math

import pytest

from seqjax import scores


def test_best_takes_the_mode_and_gives_ties_to_the_latest():
  items = [("a", 0.5), ("b", 0.9), ("c", 0.9), ("d", 0.1)]
  assert scores.best(items, lambda x: x[1], "max")[0] == "c"
  assert scores.best(items, lambda x: x[1], "min")[0] == "d"
  assert scores.best([], lambda x: x, "max") is None


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf, True, "0.9"])
def test_a_missing_or_nonfinite_value_is_never_the_best(bad):
  # +inf would win a "max" ranking and -inf a "min" one if taken at face value.
  for mode in scores.MODES:
    assert scores.best([0.5, bad], lambda x: x, mode) == 0.5
    assert scores.score(bad, mode) == scores.worst(mode)
    assert not scores.reaches(bad, 0.0, mode)


def test_reaches_a_level_by_mode():
  assert scores.reaches(1.0, 1.0, "max") and not scores.reaches(0.99, 1.0, "max")
  assert scores.reaches(0.01, 0.01, "min") and not scores.reaches(0.02, 0.01, "min")
  with pytest.raises(ValueError, match="mode='up'"):
    scores.worst("up")
