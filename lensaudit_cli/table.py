"""Plain-text table of gate results."""

from __future__ import annotations


def gate_table(rows) -> str:
    header = ("check", "asset", "passed", "severity", "metric", "threshold")
    lines = []
    for spec, res in rows:
        if res is None:
            lines.append((spec.name, spec.asset, "not materialised", spec.severity, "", ""))
        else:
            lines.append((res.name, res.asset, "PASS" if res.passed else "FAIL", res.severity, res.metric_text(), res.threshold))
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*map(str, r)) for r in lines]
    return "\n".join(out)
