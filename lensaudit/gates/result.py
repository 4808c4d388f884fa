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

    def metric_text(self) -> str:
        if self.metric is None or (isinstance(self.metric, float) and math.isnan(self.metric)):
            return "n/a"
        return f"{self.metric:.4g}"


def cannot_compute(name: str, asset: str, severity: str, why: str, threshold: str = "") -> GateResult:
    """A gate that cannot be computed fails; it never passes by default."""
    return GateResult(name, asset, False, severity, None, threshold, {"error": why})
