"""Plain-text table of gate results (``tabulate``'s ``simple`` format: a header, a rule of
dashes, one row per gate; cells left-aligned and never parsed as numbers, so the metric
prints exactly as ``GateResult.metric_text`` writes it)."""

from __future__ import annotations

from tabulate import tabulate

HEADER = ("check", "asset", "passed", "severity", "metric", "threshold")


def gate_table(rows) -> str:
    lines = []
    for spec, res in rows:
        if res is None:
            lines.append((spec.name, spec.asset, "not materialised", spec.severity, "", ""))
        else:
            lines.append((res.name, res.asset, "PASS" if res.passed else "FAIL", res.severity, res.metric_text(), res.threshold))
    return tabulate(lines, headers=HEADER, tablefmt="simple", disable_numparse=True, colalign=("left",) * len(HEADER))
