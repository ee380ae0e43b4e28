"""Strict JSON for every file seqjax writes: no NaN or Infinity tokens.

A non-finite float becomes `null`, and the object that held it gains a
`"nonfinite"` entry saying what it was, `{"loss": "nan"}`, so a missing number
is never mistaken for a measured one and every file parses as standard JSON.
"""

import json
import math

NONFINITE = "nonfinite"


def clean(obj):
  """`obj` with non-finite floats replaced by None and recorded beside them."""
  if isinstance(obj, dict):
    out, bad = {}, {}
    for key, value in obj.items():
      out[key] = clean(value)
      kind = _nonfinite(value)
      if kind:
        bad[str(key)] = kind
    if bad:
      out[NONFINITE] = {**out.get(NONFINITE, {}), **bad}
    return out
  if isinstance(obj, (list, tuple)):
    return [clean(v) for v in obj]
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def _nonfinite(value) -> str | None:
  """"nan", "inf" or "-inf" for a non-finite float (or one inside a list)."""
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  if isinstance(value, (list, tuple)):
    return next(filter(None, map(_nonfinite, value)), None)
  return None


def dumps(obj, **kwargs) -> str:
  """`json.dumps` of `clean(obj)`, refusing any non-finite number left over."""
  return json.dumps(clean(obj), allow_nan=False, **kwargs)
