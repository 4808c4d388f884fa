"""The ``lensaudit`` command: ``materialize`` (Dagster runs into ``LENSAUDIT_HOME``), ``gates``
(every gate of ``lensaudit.gates.registry`` on what is stored, as a table; exit 1 when an
ERROR gate fails), ``summary`` (headline figures as Markdown), ``inject`` (noise-free lensed
arcs on zero hosts) and ``cutout`` (one cutout in the research group's NPZ format)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

from lensaudit.config import RUN_PROFILE_FILE
from lensaudit.numpy_pages import no_hugepage_advice
from lensaudit.store import home_setting, is_s3_uri, lensaudit_home
from lensaudit.survey.instrument import BANDS

# Dagster's console logger at WARNING: progress is the tqdm bar, details are in the UI
_quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _prepare_home(home: str | None, profile: str | None, create: bool = False) -> tuple[Path, str]:
    """The local store root and profile of ``home``; for an ``s3://`` home, its local cache
    (``lensaudit.s3store``), with the run record fetched first, and ``$LENSAUDIT_HOME`` left
    the URI so every run's settings resource syncs with it.  The profile: ``profile``, else the
    home's run record, else ``$LENSAUDIT_PROFILE``, else ``demo`` (as a UI run resolves it).
    ``create``: make the local folder and its Dagster instance folder (``materialize``); the
    commands that only read a home leave a mistyped path uncreated."""
    setting = home_setting(home)
    h = lensaudit_home(home)
    s3 = is_s3_uri(setting)
    if create or s3:
        h.mkdir(parents=True, exist_ok=True)
    if s3:
        from lensaudit.s3store import S3IntegrityError, S3Store

        report = S3Store(setting).pull(only=[RUN_PROFILE_FILE])
        if report.corrupt:
            raise S3IntegrityError(setting, report.corrupt)
    if profile is None:
        stored = h / RUN_PROFILE_FILE
        profile = json.loads(stored.read_text())["profile"] if stored.exists() else os.environ.get("LENSAUDIT_PROFILE", "demo")
    os.environ["LENSAUDIT_HOME"] = setting if s3 else str(h)
    os.environ["LENSAUDIT_PROFILE"] = profile
    dagster_home = h / "dagster"
    if create or s3:
        dagster_home.mkdir(exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return h, profile


def _stored_record(home: Path) -> dict | None:
    stored = home / RUN_PROFILE_FILE
    if not stored.is_file():
        return None
    try:
        return json.loads(stored.read_text())
    except ValueError as exc:
        raise ValueError(f"unreadable run record {stored}: {exc}") from exc


def _run_record(home: Path, profile: str, flags: dict) -> dict:
    """The run record ``materialize`` writes: the profile, the stored overrides of the same
    profile (a home keeps its seed and thread count), then the flags given now; validated."""
    from lensaudit.config import RUN_RECORD_OVERRIDES, profile_from_record

    stored = _stored_record(home) or {}
    record = {"profile": profile}
    if stored.get("profile") == profile:
        record.update({k: stored[k] for k in RUN_RECORD_OVERRIDES if stored.get(k) is not None})
    record.update({k: v for k, v in flags.items() if v is not None})
    profile_from_record(record)
    return record


def home_profile(home: Path, name: str):
    """The Profile of a home: its run record's (overrides included) when the record names
    ``name``, else the plain profile ``name``."""
    from lensaudit.config import profile_for

    return profile_for(name, _stored_record(home))


_SELECTION_WORDS = {"and", "or", "not", "key", "tag", "group", "kind", "owner", "code_location", "status", "column",
                    "table_name", "column_tag", "sinks", "roots"}


def normalise_selection(sel: str) -> str:
    """Read bare asset names as ``key:<name>`` so Dagster's selection syntax applies to
    them: ``+training_manifest`` then means the asset and *all* of its upstream."""
    import re

    def repl(m):
        word = m.group(1)
        return word if word.lower() in _SELECTION_WORDS else f"key:{word}"

    return re.sub(r'(?<![\w:"*.])([A-Za-z_][A-Za-z0-9_]*)(?![\w:"(])', repl, sel)


def resolve_selection(sel: str, graph):
    import dagster as dg

    if not sel:
        return graph.get_all_asset_keys()
    return dg.AssetSelection.from_string(normalise_selection(sel)).resolve(graph)


def _partition_range(defs, keys, sweep_range: tuple[str, str] | None) -> dict[str, str]:
    graph = defs.resolve_asset_graph()
    pdefs = {graph.get(k).partitions_def for k in keys if graph.get(k).partitions_def is not None}
    if not pdefs:
        return {}
    if len(pdefs) > 1:
        raise SystemExit("lensaudit: the selection mixes partition definitions")
    if sweep_range is None:
        raise SystemExit("lensaudit: the selection has sweep partitions but no sweep range was planned")
    first, last = sweep_range
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def sweep_range(partition_keys: list[str], found: list[str], subset, location: str) -> tuple[str, str]:
    """(first, last) sweep partition of the run over ``found`` (the sweep files of the
    location), only the profile's ``subset`` of them when given; they must be contiguous in
    ``partition_keys`` (the instance's sweep partitions, in order)."""
    if subset:
        absent = sorted(set(subset) - set(found))
        if absent:
            raise SystemExit(f"lensaudit: the profile's sweeps {absent} are not under {location!r}")
        wanted = [k for k in found if k in subset]
    else:
        wanted = list(found)
    if not wanted:
        raise SystemExit(f"lensaudit: no sweep-*.fits file under {location!r}")
    idx = sorted(partition_keys.index(k) for k in wanted)
    if idx != list(range(idx[0], idx[-1] + 1)):
        raise SystemExit(f"lensaudit: the sweeps to build ({len(wanted)} under {location!r}) are not contiguous in the "
                         "instance's sweep partitions (partitions of another sweep location lie between them); "
                         "use a fresh --home for this location")
    return partition_keys[idx[0]], partition_keys[idx[-1]]


def plan_sweep_range(defs, instance, keys, profile_name: str) -> tuple[str, str] | None:
    """Register the sweep files of the code location's ``sweeps`` resource as sweep partitions
    of ``instance`` (what ``sweep_discovery_sensor`` adds) and return the range the run builds
    (the profile's sweep subset on the mock sky); None when no selected asset is sweep-partitioned."""
    from assets.sweeps import SWEEP_PARTITIONS, register_sweep_partitions
    from lensaudit.config import get_profile

    graph = defs.resolve_asset_graph()
    if not any(graph.get(k).partitions_def == SWEEP_PARTITIONS for k in keys):
        return None
    from lensaudit.data_config import data_config_at_run_time

    # the data configuration of the run (--data-config sets $LENSAUDIT_DATA_CONFIG), as the assets see it
    sweeps = defs.resources["sweeps"].with_data(data_config_at_run_time())
    found = register_sweep_partitions(instance, sweeps)
    all_keys = list(SWEEP_PARTITIONS.get_partition_keys(dynamic_partitions_store=instance))
    subset = get_profile(profile_name).sweep_subset if sweeps.is_mock else None
    return sweep_range(all_keys, found, subset, sweeps.location)


def _use_data_config(path: str | None) -> None:
    """Validate ``--data-config`` and hand it to the runs (``$LENSAUDIT_DATA_CONFIG``, read by
    ``LensauditSettings.data()`` when they execute).  DataConfigError (one line) when invalid."""
    if path is None:
        return
    from lensaudit.data_config import DATA_CONFIG_ENV, load_data_config

    load_data_config(path)
    os.environ[DATA_CONFIG_ENV] = str(Path(path).expanduser().resolve())


def cmd_materialize(args) -> int:
    from lensaudit.data_config import DataConfigError

    t0 = time.time()

    try:
        _use_data_config(args.data_config)
    except DataConfigError as exc:
        print(f"lensaudit: {exc}", file=sys.stderr)
        return 2
    try:
        home, profile = _prepare_home(args.home, args.profile, create=True)
    except (OSError, ValueError, KeyError) as exc:  # an s3:// home: bad URI, unreachable, corrupt record
        print(f"lensaudit: cannot open the home: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    import dagster as dg
    from tqdm import tqdm

    from lensaudit_cli.project import load_definitions

    defs, root = load_definitions()
    if not (home / "dagster" / "dagster.yaml").exists():
        shutil.copy(root / "dagster.yaml", home / "dagster" / "dagster.yaml")
    try:
        record = _run_record(home, profile, {"train_seed": args.train_seed, "cpu_threads": args.cpu_threads})
    except ValueError as exc:
        print(f"lensaudit: {exc}", file=sys.stderr)
        return 2
    (home / RUN_PROFILE_FILE).write_text(json.dumps(record, sort_keys=True))
    graph = defs.resolve_asset_graph()
    try:
        keys = resolve_selection(args.select, graph)
    except Exception as exc:  # Dagster raises several types for a bad selection string
        print(f"lensaudit: bad --select {args.select!r}: {exc}", file=sys.stderr)
        return 2
    if not keys:
        print(f"lensaudit: --select {args.select!r} matches no asset", file=sys.stderr)
        return 2
    instance = dg.DagsterInstance.get()
    from resources.sweeps import SweepLocationError

    try:
        sweeps = plan_sweep_range(defs, instance, set(keys), profile)
    except (SweepLocationError, DataConfigError) as exc:
        print(f"lensaudit: {exc}", file=sys.stderr)
        return 1
    from assets.detector import register_arch_partitions
    from lensaudit.config import get_profile

    register_arch_partitions(instance, get_profile(profile).detector.archs)  # as architecture_partitions_sensor
    runs = plan_runs(defs, set(keys), profile, sweeps)
    n_checks = sum(len(graph.get(k).check_keys) for k in keys)
    # the bar counts Dagster's steps: an asset's checks run in its own step or in a shared one
    n_steps = sum(len(_job_for(defs, tags).get_subset(asset_selection=set(ks)).graph.nodes) for ks, tags in runs)
    print(f"lensaudit: materialising {len(keys)} assets with {n_checks} checks (profile {profile}) into {home}"
          f" in {len(runs)} run(s)", flush=True)
    ok = True
    with tqdm(total=n_steps, desc="steps", unit="step") as bar:
        for run_keys, tags in runs:
            run_id, r = _execute(_job_for(defs, tags), instance, run_keys, tags, bar)
            if r is None:
                return 1
            for ev in r.all_events:
                if ev.is_failure and ev.event_specific_data is not None and getattr(ev.event_specific_data, "error", None):
                    print(f"lensaudit: step {ev.step_key} failed: {ev.event_specific_data.error.message.strip()}",
                          file=sys.stderr)
            tqdm.write(f"lensaudit: run {run_id} ({_describe(tags)}) {'succeeded' if r.success else 'FAILED'}")
            if not r.success:
                ok = False
                break
    status = "succeeded" if ok else "FAILED"
    print(f"lensaudit: {status} in {time.time() - t0:.0f} s; assets under {home / 'assets'}")
    report = home / "assets" / "audit_report" / "audit_report.html"
    if report.exists():
        print(f"lensaudit: audit report: {report}")
    return 0 if ok else 1


def _job_for(defs, tags: dict):
    """The job of one planned run: the architecture-partitioned one for a run of one detector partition."""
    return defs.resolve_job_def("lensaudit_detector" if "dagster/partition" in tags else "lensaudit_main")


def _describe(tags: dict) -> str:
    if "dagster/partition" in tags:
        return f"partition {tags['dagster/partition']}"
    if tags:
        return f"partitions {tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
    return "unpartitioned"


def _execute(job, instance, keys, tags, bar):
    """One in-process run with a progress bar fed from its step events; (run_id, result or None)."""
    from dagster import DagsterEventType

    run_id = str(uuid.uuid4())
    result: dict = {}

    def _run():
        try:
            result["r"] = job.execute_in_process(instance=instance, asset_selection=sorted(keys), tags=tags,
                                                 run_id=run_id, raise_on_error=False, run_config=_quiet)
        except Exception as exc:  # reported below; the run's own events carry the details
            result["exc"] = exc

    t = threading.Thread(target=_run, daemon=True)
    t.start()
    done = 0
    while t.is_alive():
        t.join(timeout=1.0)
        try:
            n = len(instance.all_logs(run_id, of_type={DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}))
        except Exception:  # the run may not exist yet; progress only
            n = done
        if n > done:
            bar.update(n - done)
            done = n
    if "exc" in result:
        print(f"lensaudit: run failed: {result['exc']}", file=sys.stderr)
        return run_id, None
    return run_id, result["r"]


def plan_runs(defs, keys: set, profile_name: str, sweeps: tuple[str, str] | None) -> list[tuple[list, dict]]:
    """Split a selection into runs that Dagster can execute with one partition tag each:
    the sweep-partitioned / unpartitioned assets upstream of the detector (over the sweep
    partition range ``sweeps``, from ``plan_sweep_range``), one run per architecture of the
    profile for the architecture-partitioned assets, then the rest."""
    import dagster as dg

    from assets.detector import ARCH_PARTITIONS
    from lensaudit.config import get_profile

    graph = defs.resolve_asset_graph()

    def is_arch(k):
        return graph.get(k).partitions_def == ARCH_PARTITIONS

    arch_keys = {k for k in keys if is_arch(k)}
    if not arch_keys:
        return [(sorted(keys), _partition_range(defs, keys, sweeps))]
    after = (dg.AssetSelection.assets(*arch_keys).downstream().resolve(graph) & keys) - arch_keys
    before = keys - arch_keys - after
    runs = [(sorted(before), _partition_range(defs, before, sweeps))] if before else []
    runs += [(sorted(arch_keys), {"dagster/partition": a}) for a in get_profile(profile_name).detector.archs]
    if after:
        runs.append((sorted(after), _partition_range(defs, after, sweeps)))
    return runs


def evaluate_gates_robustly(view, gates=None, broken: dict[str, str] | None = None) -> list:
    """(spec, result or None) for every gate, like ``evaluate_all``, but a gate that raises
    anything (a truncated Parquet file, a bad shard path, a corrupt checkpoint) becomes a
    failed result naming the error instead of ending the command.  ``broken`` (asset ->
    reason: an s3:// home's objects that failed their sha256 check) fails every gate of
    those assets without reading them.  An asset that is not stored leaves its gates unevaluated
    (a partial home), unless an asset downstream of it is stored: then something was removed
    after it was read, and its gates fail."""
    from lensaudit.gates.registry import GATES
    from lensaudit.gates.result import GateResult, cannot_compute
    from lensaudit.tables import downstream_assets

    rows = []
    for g in GATES if gates is None else gates:
        if broken and g.asset in broken:
            rows.append((g, cannot_compute(g.name, g.asset, g.severity, broken[g.asset])))
            continue
        try:
            if not view.has(g.asset):
                stored_below = [a for a in downstream_assets(g.asset) if view.has(a)]
                rows.append((g, cannot_compute(g.name, g.asset, g.severity, f"{g.asset} is not stored although "
                                               f"{', '.join(stored_below)} (downstream of it) is") if stored_below else None))
                continue
            res = g.evaluate(view)
            if not isinstance(res, GateResult):
                res = cannot_compute(g.name, g.asset, g.severity, f"gate returned {type(res).__name__}")
        except Exception as exc:  # noqa: BLE001 - one broken artefact must not hide the other gates
            msg = " ".join(str(exc).split())[:300]
            res = cannot_compute(g.name, g.asset, g.severity, f"{type(exc).__name__}: {msg}")
        rows.append((g, res))
    return rows


def _nothing_stored(home: Path) -> int:
    print(f"lensaudit: nothing stored under {home / 'assets'}; no gate evaluated", file=sys.stderr)
    return 1  # a gate that cannot be computed fails


def cmd_gates(args) -> int:
    try:
        home, profile = _prepare_home(args.home, None)
        from lensaudit.config import get_profile

        prof = home_profile(home, profile)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"lensaudit gates: cannot open the home: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if not is_s3_uri(home_setting(args.home)) and not (home / "assets").is_dir() \
            and not (home / "external_audit.json").is_file():
        return _nothing_stored(home)  # before any table: a mistyped path is one line
    from lensaudit.gates.registry import StoreView
    from lensaudit_cli.table import gate_table

    try:
        audit = _audit_record(home)
        audit_prof = get_profile(audit["profile"]) if audit is not None else None
    except ValueError as exc:
        print(f"lensaudit gates: {exc}", file=sys.stderr)
        return 2
    try:
        broken, unowned = _pull_s3_home(args.home)
    except ValueError as exc:
        print(f"lensaudit gates: cannot open the home: {exc}", file=sys.stderr)
        return 2
    if audit is not None:  # an external detector's audit folder: its selection gates
        from lensaudit.external_gates import gate_view, selection_gates

        rows = evaluate_gates_robustly(gate_view(Path(audit["home"]), home, audit_prof, audit["detector"]),
                                       selection_gates(), broken)
    else:
        rows = evaluate_gates_robustly(StoreView(home, prof), broken=broken)
    print(gate_table(rows))
    gated = {g.asset for g, _ in rows}
    unowned.update({f"{a} (no gate reads it)": r for a, r in broken.items() if a not in gated})
    for what, reason in unowned.items():
        print(f"lensaudit gates: {what}: {reason}", file=sys.stderr)
    evaluated = [res for _, res in rows if res is not None]
    for res in evaluated:
        if not res.passed and "error" in res.details:
            print(f"lensaudit gates: {res.name}: cannot be computed: {res.details['error']}", file=sys.stderr)
    if not evaluated:
        return _nothing_stored(home)
    failed = [res for res in evaluated if not res.passed and res.severity == "ERROR"]
    return 1 if failed or unowned else 0


def _pull_s3_home(home: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """For an s3:// home, make its cache an exact copy of the bucket (``pull(strict=True)``:
    every file re-hashed against the sha256 recorded on S3) and return the objects that fail
    the check: (asset -> reason) for the gates of the assets that read them, and (path ->
    reason) for those no gate reads.  ({}, {}) for a local home."""
    from lensaudit.s3store import S3Store, is_s3_uri, owner_asset

    setting = home_setting(home)
    if not is_s3_uri(setting):
        return {}, {}
    store = S3Store(setting)
    report = store.pull(strict=True)
    broken: dict[str, str] = {}
    unowned: dict[str, str] = {}
    for rel, reason in sorted(report.corrupt.items()):
        asset = owner_asset(rel)
        msg = f"{store.uri}/{rel} fails its sha256 check ({reason}); not read"
        if asset is None:
            unowned[f"{store.uri}/{rel}"] = reason
        elif asset not in broken:
            broken[asset] = msg
    return broken, unowned


def _audit_record(folder: Path) -> dict | None:
    p = folder / "external_audit.json"
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text())
        return {k: rec[k] for k in ("home", "profile", "detector")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable audit record {p}: {exc}") from exc


def _audit_home(args):
    """(home, profile) of an existing home (its recorded profile); ValueError when there is none."""
    h = lensaudit_home(args.home)
    if not (h / "assets").is_dir():
        raise ValueError(f"nothing stored under {h / 'assets'}: materialise the audit first")
    home, profile = _prepare_home(args.home, None)
    return home, home_profile(home, profile)


def _print_audit(summary: dict, out: Path, view_home: Path, profile, name: str) -> None:
    from lensaudit.external_gates import build_external_report, gate_view, selection_gates
    from lensaudit_cli.table import gate_table

    rows = evaluate_gates_robustly(gate_view(view_home, out, profile, name), selection_gates())
    print(gate_table(rows))
    report = build_external_report(out, summary, [r for _, r in rows if r is not None])
    failed = [r.name for _, r in rows if r is not None and not r.passed and r.severity == "ERROR"]
    th = ", ".join(f"{k} {v:.4g}" for k, v in summary["thresholds"].items())
    print(f"lensaudit: {name}: {summary['injections']} injections, {summary['sufficient_cells']} sufficient cells, "
          f"thresholds (logit) {th}; {len(failed)} ERROR selection gate(s) failed"
          f"{': ' + ', '.join(failed) if failed else ''}")
    print(f"lensaudit: results under {out} (completeness table: {out / 'assets' / 'completeness_table' / 'data.csv'}; "
          f"report: {report}; gates again: lensaudit gates --home {out})")


def _torch_device(name: str | None) -> str | None:
    """``auto``: CUDA when present, else the CPU (as the device resource); a CUDA device
    that is not there is a clear error."""
    if name is None:
        return None
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ValueError(f"device {name!r}: use cpu, cuda, cuda:N or auto")
    return name


# errors a user's input can cause in the external-detector commands: one line, exit 1
def _user_errors():
    from lensaudit.detector.external import ExternalDetectorError
    from lensaudit.selection.external import OfflineError

    return (ExternalDetectorError, OfflineError, FileNotFoundError, ValueError, OSError)


def cmd_audit_model(args) -> int:
    try:
        from lensaudit.detector.external import load_external
        from lensaudit.selection.external import audit_detector, audit_dir

        home, profile = _audit_home(args)
        device = _torch_device(args.device)
        det = load_external(args.spec, device)
        out = Path(args.out).resolve() if args.out else audit_dir(home, det.name)
        summary = audit_detector(home, profile, det, device, out,
                                 provenance={"mode": "in-process model", "model": det.describe()})
    except _user_errors() as exc:
        print(f"lensaudit audit-model: {exc}", file=sys.stderr)
        return 1
    _print_audit(summary, out, home, profile, det.name)
    return 0


def cmd_export(args) -> int:
    try:
        from lensaudit.selection.external import export_injections

        home, profile = _audit_home(args)
        info = export_injections(home, profile, args.out, _torch_device(args.device))
    except _user_errors() as exc:
        print(f"lensaudit export-injections: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
    print(f"lensaudit export-injections: {info['n']} stamps -> {args.out} ({counts}); score every id and run "
          f"lensaudit import-scores --home {home} --scores SCORES.parquet|csv (columns id and logit or probability)")
    return 0


def cmd_import(args) -> int:
    try:
        from lensaudit.selection.external import audit_dir, import_scores

        home, profile = _audit_home(args)
        from lensaudit.store import check_name

        check_name(args.name)
        out = Path(args.out).resolve() if args.out else audit_dir(home, args.name)
        summary = import_scores(home, profile, args.scores, args.name, out, _torch_device(args.device))
    except _user_errors() as exc:
        print(f"lensaudit import-scores: {exc}", file=sys.stderr)
        return 1
    _print_audit(summary, out, home, profile, args.name)
    return 0


def _negatives_per_split(text: str | None) -> dict[str, int] | None:
    """'train=300,val=60,test=40' -> {'train': 300, ...}; None/'' -> None (every negative)."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        split, _, n = part.partition("=")
        if split.strip() not in ("train", "val", "test") or not n.strip().isdigit():
            raise ValueError(f"--negatives takes split=count pairs (train, val, test), got {part!r}")
        out[split.strip()] = int(n)
    return out


def cmd_export_training(args) -> int:
    """The detector's inputs as a small home of their own (for a GPU machine without Spark)."""
    try:
        from lensaudit.training_export import export_training_home

        home = Path(args.home).resolve()
        info = export_training_home(home, Path(args.out).resolve(), _negatives_per_split(args.negatives), args.seed)
    except _user_errors() as exc:
        print(f"lensaudit export-training: {exc}", file=sys.stderr)
        return 1
    print(f"lensaudit export-training: {info['rows']} of {info['source_rows']} manifest rows, "
          f"{info['stamp_bytes'] / 2**20:.1f} MiB of stamps -> {args.out} ({info['by_split_label']})")
    return 0


def cmd_summary(args) -> int:
    """The headline figures of a home as a Markdown table (what the README pastes, with the commit)."""
    try:
        home, profile = _prepare_home(args.home, None)
        broken, unowned = _pull_s3_home(args.home)  # an s3:// home: its objects, checked
    except (OSError, ValueError, KeyError) as exc:
        print(f"lensaudit summary: cannot open the home: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if broken or unowned:
        print(f"lensaudit summary: {'; '.join([*broken.values(), *unowned])}", file=sys.stderr)
        return 1
    from lensaudit.summary import markdown, summarise

    if not (home / "assets").is_dir():
        print(f"lensaudit summary: nothing stored under {home / 'assets'}", file=sys.stderr)
        return 1
    print(markdown(summarise(home, home_profile(home, profile))))
    return 0


def cmd_inject(args) -> int:
    from lensaudit.injection.cli_render import inject_to_npz
    from lensaudit.injection.params import InvalidParameters

    try:
        n = inject_to_npz(args.params, args.out, device=args.device)
    except InvalidParameters as exc:
        print(f"lensaudit inject: {exc}", file=sys.stderr)
        return 1
    print(f"lensaudit inject: {n} stamps -> {args.out}")
    return 0


def cmd_cutout(args) -> int:
    """One cutout; a bad source setting, an unreadable home or an unwritable output is a
    clear error (exit 2), not a traceback."""
    try:
        return _cmd_cutout(args)
    except (OSError, ValueError, KeyError) as exc:
        print(f"lensaudit cutout: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


def _cmd_cutout(args) -> int:
    if args.source is None:  # --coadd-dir alone means the coadd source
        args.source = "coadd" if args.coadd_dir else "mock"
    if args.source == "mock":
        from lensaudit.config import get_profile
        from lensaudit.mock.lookup import mock_cutout

        home, profile = _prepare_home(args.home, None, create=True)
        c = mock_cutout(args.ra, args.dec, home, get_profile(profile).mock, bands=args.bands, size=args.size)
        return _write_cutout(c, args)
    if args.source == "coadd":
        if not args.coadd_dir:
            print("lensaudit cutout: --source coadd needs --coadd-dir", file=sys.stderr)
            return 2
        from lensaudit.cutouts.coadd import CoaddSource

        src = CoaddSource(args.coadd_dir)
    else:
        from lensaudit.cutouts.http import DEFAULT_BASE_URL, HttpCutoutSource

        src = HttpCutoutSource(os.environ.get("LENSAUDIT_CUTOUT_URL", DEFAULT_BASE_URL),
                               cache_dir=lensaudit_home(None) / "http_cache")
    return _write_cutout(src.cutout(args.ra, args.dec, bands=args.bands, size=args.size), args)


def _write_cutout(c, args) -> int:
    from lensaudit.cutouts.npz import write_npz
    from lensaudit.cutouts.qc import quality

    if not c.ok:
        print(f"lensaudit cutout: failed: {c.reason}", file=sys.stderr)
        return 1
    qc = quality(c.data, args.bands, args.size)
    write_npz(args.out, c, quality_ok=bool(qc["qc_ok"]), quality_reason=qc["qc_reason"])
    print(f"lensaudit cutout: {args.out} ({len(args.bands)}x{args.size}x{args.size}, bands {args.bands}, "
          f"qc {'ok' if qc['qc_ok'] else qc['qc_reason']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lensaudit", description="Audit a strong-lens finder on DESI Legacy Surveys DR10.")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("materialize", help="materialise assets (Dagster) into LENSAUDIT_HOME")
    m.add_argument("--select", default="", help="Dagster asset selection, e.g. '+training_manifest' = it and all its "
                   "upstream; bare names mean key:<name> (default: all)")
    m.add_argument("--profile", default=None, choices=["tiny", "demo", "full"],
                   help="default: the home's run record, else $LENSAUDIT_PROFILE, else demo")
    m.add_argument("--home", default=None, help="LENSAUDIT_HOME (default ./lensaudit_home), or s3://bucket/prefix: "
                   "worked on in a local cache ($LENSAUDIT_CACHE), synchronised with S3")
    m.add_argument("--data-config", default=None, metavar="FILE",
                   help="real-data configuration (YAML, e.g. configs/dr10_south.yaml): sweeps, cutout source, "
                        "survey-bricks table, rate limit; default: $LENSAUDIT_DATA_CONFIG, else the LENSAUDIT_SWEEPS / "
                        "LENSAUDIT_CUTOUT_* settings")
    m.add_argument("--train-seed", type=int, default=None, help="the detector's training seed for this home "
                   "(default: the profile's; kept in the home's run_profile.json for later runs)")
    m.add_argument("--cpu-threads", type=int, default=None, help="torch CPU threads of the detector's training "
                   "(default: the profile's; kept like --train-seed)")
    m.set_defaults(func=cmd_materialize)
    g = sub.add_parser("gates", help="evaluate every gate on what is stored; exit 1 if an ERROR gate fails")
    g.add_argument("--home", default=None, help="a home directory or s3://bucket/prefix (its objects' sha256 "
                   "checked first; a corrupt object fails its asset's gates)")
    g.set_defaults(func=cmd_gates)
    s = sub.add_parser("summary", help="the home's headline figures (AUC, recall, completeness, gates) as Markdown")
    s.add_argument("--home", default=None)
    s.set_defaults(func=cmd_summary)
    i = sub.add_parser("inject", help="render noise-free lensed arcs on zero hosts (verification, debugging)")
    i.add_argument("--params", required=True, help="JSON list of parameter objects (see README)")
    i.add_argument("--out", required=True, help="output .npz: images (N,3,101,101) float32 nmgy/pixel, magnification (N,)")
    i.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    i.set_defaults(func=cmd_inject)
    c = sub.add_parser("cutout", help="one cutout in the research group's NPZ format")
    c.add_argument("--ra", type=float, required=True)
    c.add_argument("--dec", type=float, required=True)
    c.add_argument("--source", choices=["mock", "coadd", "http"], default=None,
                   help="the embedded mock sky (objects within 1.5\"), coadd bricks (--coadd-dir), or the cutout "
                        "service ($LENSAUDIT_CUTOUT_URL); default: coadd when --coadd-dir is given, else mock")
    c.add_argument("--home", default=None, help="LENSAUDIT_HOME (mock source: where the mock sky lives)")
    c.add_argument("--coadd-dir", default=None, help="directory or URL prefix of legacysurvey-<brick>-image-<band>.fits.fz")
    c.add_argument("--bands", default=BANDS)
    c.add_argument("--size", type=int, default=101)
    c.add_argument("--out", required=True)
    c.set_defaults(func=cmd_cutout)
    a = sub.add_parser("audit-model", help="the selection function of your own TorchScript / ONNX finder "
                       "(README: Audit your own finder)")
    a.add_argument("--home", default=None)
    a.add_argument("--spec", required=True, help="input spec JSON: model, format, bands, input_size, preprocessing, "
                   "layout, output")
    a.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, cuda:N")
    a.add_argument("--out", default=None, help="audit folder (default HOME/external/<name>)")
    a.set_defaults(func=cmd_audit_model)
    e = sub.add_parser("export-injections", help="every stamp the selection function scores, for a closed model, "
                       "as one NPZ with ids")
    e.add_argument("--home", default=None)
    e.add_argument("--out", required=True, help="output .npz")
    e.add_argument("--device", default="cpu", help="where the injections are made: cpu, cuda, cuda:N, auto "
                   "(the import replays them there)")
    e.set_defaults(func=cmd_export)
    r = sub.add_parser("import-scores", help="a closed model's scores of the exported stamps -> completeness, "
                       "failure modes, selection gates")
    r.add_argument("--home", default=None)
    r.add_argument("--scores", required=True, help=".parquet or .csv with id and logit or probability")
    r.add_argument("--name", default="imported", help="the detector's name (audit folder HOME/external/<name>)")
    r.add_argument("--out", default=None, help="audit folder (default HOME/external/<name>)")
    r.add_argument("--device", default=None, help="default: the export's device")
    r.set_defaults(func=cmd_import)
    x = sub.add_parser("export-training", help="the detector's inputs (manifest, cutouts, shortcut features, run "
                       "record) as a home of their own, e.g. for a GPU machine without Spark")
    x.add_argument("--home", required=True)
    x.add_argument("--out", required=True, help="an empty folder: the exported home")
    x.add_argument("--negatives", default=None, help="negatives per split, e.g. train=300,val=60,test=40 "
                   "(default: all; every positive is kept)")
    x.add_argument("--seed", type=int, default=0, help="seed of the negatives' sample")
    x.set_defaults(func=cmd_export_training)
    return p


def terminable_by_sigterm() -> None:
    """Give SIGTERM its default action when this process inherited it ignored.

    A process started in the background by a non-interactive shell inherits SIGINT ignored,
    and Dagster's in-process execution, when it restores its interrupt handlers in the main
    thread, gives SIGTERM the SIGINT disposition (``dagster._utils.interrupts``): every process
    started from there (a test runner's CLI calls, this CLI's compute-log ``tail`` processes)
    then ignores SIGTERM, so Dagster cannot stop those tails: each run waits 2 x 30 s and leaves
    them running, holding the run's output pipe open.  A run of this CLI must stay stoppable."""
    import signal

    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv=None) -> int:
    terminable_by_sigterm()
    no_hugepage_advice()  # numpy's per-array huge-page advice: seconds of page faults on VMs where THP fails
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
