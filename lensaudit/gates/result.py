"""The result of a GO/NO-GO gate, independent of Dagster."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ERROR = "ERROR"
WARN = "WARN"


@dataclass
class GateResult:
    name: str
    asset: str
    passed: bool
    severity: str  # ERROR blocks, WARN flags
    metric: float | None = None
    threshold: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    #: (lo, hi): the values of ``metric`` the gate accepts (None: unbounded on that side), the
    #: numbers ``threshold`` states, for plotting the metric beside its threshold.  Where the
    #: decision is on an interval estimate (the realism S/N ratios) or on several quantities,
    #: a passing gate's metric lies in the bound, not every metric in the bound passes.
    bound: tuple[float | None, float | None] | None = None
    #: (lo, hi) of the interval estimate the decision compares with ``bound`` (a passing gate's
    #: interval meets the bound), where the decision is on an interval rather than on ``metric``
    interval: tuple[float, float] | None = None

    def __post_init__(self):
        """A passing gate's metric (or its decision interval) lies in its declared bound: a bound
        that disagrees with the decision is a bug of the gate, raised (the gate then cannot be
        computed and fails), so the plotted threshold is always the one that decided."""
        if not self.passed or self.bound is None or self.metric is None or not math.isfinite(self.metric):
            return
        lo, hi = self.bound
        a, b = self.interval if self.interval is not None else (self.metric, self.metric)
        eps = 1e-12 * max(1.0, *(abs(x) for x in (lo, hi, a, b) if x is not None))
        if (lo is not None and b < lo - eps) or (hi is not None and a > hi + eps):
            raise ValueError(f"gate {self.name} passed with {'interval ' + str(self.interval) if self.interval else 'metric'}"
                             f" {self.metric} outside its declared bound {self.bound}")

    def bound_text(self) -> str:
        """The bound as text: '<= 0.05', '>= 0.5', '[0.5, 2]' ('' without a bound)."""
        if self.bound is None:
            return ""
        lo, hi = self.bound
        if lo is not None and hi is not None:
            return f"[{lo:g}, {hi:g}]"
        return f">= {lo:g}" if lo is not None else f"<= {hi:g}"

    def metric_text(self) -> str:
        if self.metric is None or (isinstance(self.metric, float) and math.isnan(self.metric)):
            return "n/a"
        return f"{self.metric:.4g}"


def cannot_compute(name: str, asset: str, severity: str, why: str, threshold: str = "") -> GateResult:
    """A gate that cannot be computed fails; it never passes by default."""
    return GateResult(name, asset, False, severity, None, threshold, {"error": why})
