"""Typed check: what was stored matches the declared column schema."""

from __future__ import annotations

import pyarrow as pa

from lensaudit.gates.result import ERROR, GateResult


def schema_matches(asset: str, stored: list[pa.Schema], declared: pa.Schema) -> GateResult:
    """Every stored file has exactly the declared column names and types, in order."""
    name = f"{asset}_schema"
    problems = []
    want = [(f.name, str(f.type)) for f in declared]
    for i, s in enumerate(stored):
        got = [(f.name, str(f.type)) for f in s]
        if got != want:
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            problems.append({"file": i, "missing_or_wrong": missing[:10], "unexpected": extra[:10]})
    if not stored:
        return GateResult(name, asset, False, ERROR, None, "all files match", {"error": "no stored files"})
    return GateResult(name, asset, not problems, ERROR, float(len(problems)), "0 mismatching files",
                      bound=(None, 0.0), details={"files": len(stored), "mismatches": problems[:5]})
