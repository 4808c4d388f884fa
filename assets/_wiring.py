"""Shared wiring of the assets: schemas as TableSchema metadata, gates as asset checks,
and the failure rule for Spark task status rows."""

import json
import math
from typing import Any

import dagster as dg
import pyarrow as pa

from lensaudit.gates.registry import StoreView, gates_for
from lensaudit.gates.result import ERROR
from lensaudit.store import asset_files, file_sha256
from lensaudit.tables import SCHEMAS, side_tables_of
from resources.settings import LensauditSettings

#: op tags of every step that takes the ``device`` resource (detector training and evaluation, the
#: realism injections, the selection function, external audits): ``lensaudit/device`` names the
#: step's need; ``dagster-k8s/config`` is what dagster-k8s's ``k8s_job_executor`` (one Kubernetes
#: job per step) reads to schedule the step on a node with a GPU, while the Spark steps keep the
#: CPU pods.  See deploy/README.md "GPU placement".
GPU_OP_TAGS = {"lensaudit/device": "gpu",
               "dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}}


def table_schema(asset: str) -> dg.TableSchema:
    schema: pa.Schema = SCHEMAS[asset]
    cols = []
    for f in schema:
        desc = (f.metadata or {}).get(b"description", b"").decode()
        cols.append(dg.TableColumn(name=f.name, type=str(f.type), description=desc or None))
    return dg.TableSchema(columns=cols)

def schema_metadata(asset: str) -> dict[str, Any]:
    """The asset's static metadata: its column schema (where declared) and its side tables."""
    meta: dict[str, Any] = {"dagster/column_schema": table_schema(asset)} if asset in SCHEMAS else {}
    return {**meta, **side_tables_metadata(asset)}

def side_tables_metadata(asset: str) -> dict[str, Any]:
    """``side_tables``: the tables ``lensaudit.tables.SIDE_TABLES`` declares for ``asset`` (name ->
    description and columns), shown beside its schema in the UI; nothing for an asset without any."""
    sides = side_tables_of(asset)
    if not sides:
        return {}
    return {"side_tables": dg.MetadataValue.json({t.name: {
        "description": t.description,
        "columns": [f"{f.name}: {f.type}" for f in t.schema] if t.schema is not None else "undeclared"}
        for t in sides})}

def side_table_files_metadata(home, asset: str, partition: str | None = None) -> dict[str, Any]:
    """``side_table_files``: each side table of ``asset`` as written by this materialisation (its
    files, or only ``<partition>.parquet``): path, row count (Parquet footer) and sha256 of the bytes."""
    import pyarrow.parquet as pq

    from lensaudit.store import partition_file

    out = {}
    for t in side_tables_of(asset):
        files = asset_files(home, t.name) if partition is None else \
            [f for f in [partition_file(home, t.name, partition)] if f.is_file()]
        out[t.name] = [{"path": str(f), "rows": pq.ParquetFile(f).metadata.num_rows, "sha256": file_sha256(f)}
                       for f in files]
    return {"side_table_files": json_meta(out)} if out else {}

def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x

def _check_result(spec, res, home) -> dg.AssetCheckResult:
    meta = {"metric": dg.MetadataValue.float(float(res.metric)) if res.metric is not None and math.isfinite(res.metric)
            else dg.MetadataValue.text("n/a"),
            "threshold": dg.MetadataValue.text(res.threshold),
            "details": dg.MetadataValue.json(_jsonable(res.details))}
    if res.bound is not None:
        for side, v in zip(("threshold_lo", "threshold_hi"), res.bound):
            if v is not None:
                meta[side] = dg.MetadataValue.float(float(v))
        if res.metric is not None and math.isfinite(res.metric):
            from lensaudit.plots import gate_bound_plot

            png = gate_bound_plot(spec.name, float(res.metric), res.bound, bool(res.passed), res.interval)
            meta["metric_vs_threshold"] = dg.MetadataValue.md(_png_markdown(png, f"{spec.name} metric vs threshold"))
    if spec.plot:
        png = home / "plots" / spec.plot
        if png.is_file():
            meta["plot"] = dg.MetadataValue.md(_png_markdown(png.read_bytes(), spec.plot))
    sev = dg.AssetCheckSeverity.ERROR if res.severity == ERROR else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(asset_key=spec.asset, check_name=spec.name, passed=bool(res.passed), severity=sev,
                               metadata=meta)


def checks_for(asset_key: str) -> list[dg.AssetChecksDefinition]:
    """One multi-asset check holding every gate of ``lensaudit.gates.registry`` on this asset:
    the stored tables are read once per evaluation (one ``StoreView``) for all of them, and a
    UI selection of some of the checks evaluates only those."""
    specs = gates_for(asset_key)
    if not specs:
        return []
    check_specs = [dg.AssetCheckSpec(s.name, asset=s.asset, blocking=s.blocking, description=s.description)
                   for s in specs]

    @dg.multi_asset_check(specs=check_specs, name=f"{asset_key}_gates", can_subset=True)
    def _gates(context: dg.AssetCheckExecutionContext, settings: LensauditSettings):
        home = settings.home_path()
        view = StoreView(home, settings.profile_obj())
        selected = {k.name for k in context.selected_asset_check_keys}
        for spec in specs:
            if spec.name in selected:
                yield _check_result(spec, spec.evaluate(view), home)

    return [_gates]

def raise_on_failed_tasks(summary: dict, what: str) -> list[dict]:
    """Spark task status rows: any failure fails the asset with every reason named."""
    tasks = summary.get("tasks", [])
    failed = [t for t in tasks if not t["ok"]]
    if failed:
        lines = "\n".join(f"  {t['key']}: {t['error']}" for t in failed)
        raise dg.Failure(description=f"{what}: {len(failed)} of {len(tasks)} tasks failed:\n{lines}",
                         metadata={"failed": dg.MetadataValue.json([{k: t[k] for k in ("key", "error")} for t in failed])})
    return tasks

def json_meta(x) -> dg.MetadataValue:
    return dg.MetadataValue.json(_jsonable(json.loads(json.dumps(x, default=str))))


def _png_markdown(png: bytes, alt: str) -> str:
    import base64

    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def png_metadata(png: bytes, path) -> dg.MetadataValue:
    """Write a PNG beside the asset (atomically) and embed it in markdown metadata."""
    from lensaudit.store import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
    return dg.MetadataValue.md(f"{_png_markdown(png, 'plot')}\n\n`{path}`")


def add_partition_metadata(context: dg.AssetExecutionContext, per_partition: dict[str, dict[str, Any]]) -> None:
    """Give every partition of this step its own materialisation metadata.

    Under ``BackfillPolicy.single_run`` one step materialises a range of partitions and
    Dagster copies the step's ``MaterializeResult`` metadata onto each of them; metadata
    added here per partition key overrides that copy.  A partition of the step without an
    entry fails the step (its result is unknown)."""
    keys = list(context.partition_keys)
    missing = [k for k in keys if k not in per_partition]
    if missing:
        raise dg.Failure(f"{context.asset_key.to_user_string()}: no result for partition(s) {missing}")
    for k in keys:
        context.add_asset_metadata(per_partition[k], partition_key=k)
