"""Small statistics helpers and the result records every workload produces."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of already sorted values, nearest-rank method."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def latency_summary(samples_ns: list[int]) -> dict[str, float]:
    """p50/p99 in µs and ops/s (over the summed op times) for one repetition."""
    ordered = sorted(samples_ns)
    total_s = sum(ordered) / 1e9
    return {
        "p50_us": percentile(ordered, 0.50) / 1e3,
        "p99_us": percentile(ordered, 0.99) / 1e3,
        "ops_s": len(ordered) / total_s if total_s > 0 else math.nan,
    }


@dataclass(frozen=True)
class Spread:
    """min / median / max of one figure over the repetitions."""

    min: float
    median: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Summarise the finite values (``nan`` marks a failed repetition)."""
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(min(finite), statistics.median(finite), max(finite), len(finite))


@dataclass
class Figure:
    """One measured figure of one contender: a value per repetition.

    Attributes:
        workload: Workload key, e.g. ``"create"``.
        case: Variant within the workload, e.g. ``"full"`` or ``"get_latest"``.
        metric: What is measured, with its unit, e.g. ``"p50 µs"``.
        contender: ``"store"``, ``"a"``, ``"b"``, ``"c"`` or a labelled variant.
        values: One value per repetition, in repetition order (``nan`` = failed).
        higher_is_better: True for throughputs.
    """

    workload: str
    case: str
    metric: str
    contender: str
    values: list[float] = field(default_factory=list)
    higher_is_better: bool = False

    @property
    def spread(self) -> Spread:
        """min / median / max over the repetitions."""
        return Spread.of(self.values)


def ratios(numerator: Figure, denominator: Figure) -> Spread:
    """Per-repetition ratios ``numerator[r] / denominator[r]``, then summarised.

    Both figures come from the same interleaved repetitions, so pairing them by
    repetition index cancels most of the machine's drift between repetitions.
    """
    pairs = [
        n / d
        for n, d in zip(numerator.values, denominator.values, strict=False)
        if not (math.isnan(n) or math.isnan(d)) and d != 0
    ]
    return Spread.of(pairs)


class Results:
    """All figures of a run, addressable by (workload, case, metric, contender)."""

    def __init__(self) -> None:
        self._figures: dict[tuple[str, str, str, str], Figure] = {}
        self.notes: dict[str, list[str]] = {}

    def add(
        self,
        workload: str,
        case: str,
        metric: str,
        contender: str,
        value: float,
        *,
        higher_is_better: bool = False,
    ) -> None:
        """Append one repetition's value to a figure (created on first use)."""
        key = (workload, case, metric, contender)
        fig = self._figures.get(key)
        if fig is None:
            fig = Figure(workload, case, metric, contender, [], higher_is_better)
            self._figures[key] = fig
        fig.values.append(value)

    def get(self, workload: str, case: str, metric: str, contender: str) -> Figure | None:
        """The figure, or None if it was not measured."""
        return self._figures.get((workload, case, metric, contender))

    def figures(self, workload: str) -> list[Figure]:
        """The figures of one workload, in insertion order."""
        return [f for f in self._figures.values() if f.workload == workload]

    def note(self, workload: str, text: str) -> None:
        """Attach a line of explanation (skips, errors, settings) to a workload."""
        self.notes.setdefault(workload, []).append(text)
