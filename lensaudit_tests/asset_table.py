"""The README's asset table ("Assets and gates"), generated from the code location.

Each row is one asset of ``assets.ALL_ASSETS``: its key, group, kinds and partitions and its
``description=`` as the Dagster definition declares them (numbers in the descriptions are
formatted from ``lensaudit/spec.py`` or the producer's constants) followed by the side tables it
writes (``lensaudit.tables.SIDE_TABLES``), and its gates: the names
``lensaudit.gates.registry.gates_for`` returns, whose thresholds are in the generated gate
table of "Gates that can fail" (``lensaudit_tests.gate_faults``).  ``test_asset_table.py``
fails when the README does not hold this table verbatim.  Run
``python -m lensaudit_tests.asset_table`` to print it.
"""

from __future__ import annotations

HEADER = ("| asset | group | kinds | partitions | holds (the asset's `description=`; then the side tables it writes) "
          "| gates (asset checks: ERROR and blocking unless marked; thresholds in \"Gates that can fail\") |\n"
          "| --- | --- | --- | --- | --- | --- |")


def _partitions(pdef) -> str:
    import dagster as dg

    if pdef is None:
        return "—"
    if isinstance(pdef, dg.DynamicPartitionsDefinition):
        from assets.detector import ARCH_PARTITIONS_NAME

        what = "one per architecture of the profile" if pdef.name == ARCH_PARTITIONS_NAME else "one per sweep file"
        return f"dynamic `{pdef.name}` ({what})"
    if isinstance(pdef, dg.StaticPartitionsDefinition):
        return "static: " + ", ".join(f"`{k}`" for k in pdef.get_partition_keys())
    return type(pdef).__name__


def _gate(g) -> str:
    if g.severity == "ERROR" and g.blocking:
        return f"`{g.name}`"
    return f"`{g.name}` ({g.severity}{', blocking' if g.blocking else ''})"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown() -> str:
    from assets import ALL_ASSETS
    from lensaudit.gates.registry import gates_for
    from lensaudit.tables import side_tables_of

    rows = [HEADER]
    for a in ALL_ASSETS:
        for spec in a.specs:
            key = spec.key.to_user_string()
            kinds = ", ".join(sorted(spec.kinds))
            gates = "; ".join(_gate(g) for g in gates_for(key)) or "—"
            sides = ", ".join(f"`{t.name}`" for t in side_tables_of(key))
            holds = _cell(spec.description or "(missing)") + (f" Side tables: {sides}." if sides else "")
            rows.append(f"| `{key}` | {spec.group_name} | {kinds} | {_partitions(a.partitions_def)} "
                        f"| {holds} | {gates} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown())
