"""Comparison helpers shared by the tests."""

from __future__ import annotations

import math
from typing import Any


def same(a: Any, b: Any, *, nan_equal: bool = False) -> bool:
    """Equal values of identical types all the way down (True is not 1, 1.0 is not 1,
    -0.0 is not 0.0), with dict key order compared too; NaN equals NaN if ``nan_equal``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k], nan_equal=nan_equal) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(
            same(x, y, nan_equal=nan_equal) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, float):
        if nan_equal and math.isnan(a) and math.isnan(b):
            return True
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b
