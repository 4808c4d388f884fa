"""The systematics brackets (``completeness_brackets``) re-derived from what they were computed from.

``completeness_brackets_recomputed`` (asset ``completeness_table``, ERROR, blocking):

- every variant's records (``completeness_bracket_records``) are exactly the brackets' subset of
  the injections (``selection.run.bracket_rows``: the first injections of every cell, by
  injection_id, with the injection's cell, host and host logit);
- the stored bracket tables equal ``selection.run.bracket_tables`` recomputed from the records at
  the primary threshold recomputed from the validation scores (every column, floats to 1e-9);
- with the home's own detector, a sample of each variant's records (``BRACKET_REDERIVE_ROWS``
  evenly spaced in injection_id order, as many drawn at random) is re-injected on the CPU with the
  injection's parameters and the variant: ``observable`` equal, logits up to the arc noise (median
  shift <= ``selection_gates.LOGIT_MEDIAN_TOL``, every row within ``LOGIT_ROW_TOL``).  The clumpy
  variant draws its clumps per producer batch, so its sample is re-derived with other clumps: its
  logits are compared only in median (a bulk edit), not row by row, and its observable not at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensaudit.gates.gate_spec import GateSpec, StoreView, audit_sample, spec, with_audit_rng
from lensaudit.gates.result import ERROR, GateResult, cannot_compute

ASSET = "completeness_table"
#: bracket records re-injected per variant: this many evenly spaced and as many drawn at random.  On the demo
#: home (c238670, 8 gate runs of 32 records per variant): median shifts |0.0087| at most against the 0.1 bound,
#: largest |difference| 0.21 (0.25 clumpy) against the row bound of 3
BRACKET_REDERIVE_ROWS = 16


def records_match_injections(rec: pd.DataFrame, injections: pd.DataFrame, sel, variants) -> dict[str, str]:
    """{variant: what differs} between each variant's records and the brackets' subset of the
    injections (ids in order, cell, host, host logit)."""
    from lensaudit.selection.run import bracket_rows

    want = injections.reset_index(drop=True).iloc[bracket_rows(injections, sel)]
    out = {}
    for v in variants:
        r = rec[rec["variant"] == v]
        if len(r) != len(want) or not (r["injection_id"].to_numpy() == want["injection_id"].to_numpy()).all():
            out[v] = f"{len(r)} records are not the {len(want)} bracket injections in plan order"
            continue
        for col in ("cell", "galaxy_id"):
            if not (r[col].to_numpy() == want[col].to_numpy()).all():
                out[v] = f"{col} differs from the injection's"
        if not np.allclose(r["host_logit"].to_numpy(float), want["host_logit"].to_numpy(float), rtol=0, atol=1e-9):
            out[v] = "host_logit differs from the injection's"
    extra = sorted(set(rec["variant"]) - set(variants))
    if extra:
        out["variants"] = f"unknown variants {extra}"
    return out


def tables_differ(stored: pd.DataFrame, recomputed: pd.DataFrame) -> dict[str, str]:
    """{column: how many (variant, cell) rows differ} between the stored and recomputed bracket tables."""
    from lensaudit.gates.selection_gates import column_differences

    key = ["variant", "cell"]
    got = stored.set_index(key).sort_index()
    want = recomputed.set_index(key).sort_index()
    if len(got) != len(want) or not got.index.equals(want.index):
        return {"rows": f"{len(got)} stored (variant, cell) rows, {len(want)} recomputed"}
    return {c: bad if bad == "missing" else f"{bad} rows differ from the table recomputed from the records"
            for c, bad in column_differences(got, want).items()}


def brackets_recomputed(v: StoreView, rng: np.random.Generator, n_rows: int = BRACKET_REDERIVE_ROWS) -> GateResult:
    """The gate of this module (its docstring says what is checked); ``rng`` draws the random half
    of the re-injected records, the same injections for every variant."""
    from lensaudit.gates.selection_gates import LOGIT_MEDIAN_TOL, LOGIT_ROW_TOL, injection_hosts_of, operating_threshold
    from lensaudit.injection.visibility import observable
    from lensaudit.selection.failure_run import PARAM_KEYS
    from lensaudit.selection.inject import BRACKETS, inject_and_score
    from lensaudit.selection.run import bracket_tables

    name = "completeness_brackets_recomputed"
    threshold = (f"records = the bracket injections; tables recomputed from them; {2 * n_rows} records per variant "
                 f"re-injected (median shift <= {LOGIT_MEDIAN_TOL:g}, rows within {LOGIT_ROW_TOL:g})")
    sel, det = v.profile.selection, v.profile.detector
    thr = operating_threshold(v)
    if thr is None:
        return cannot_compute(name, ASSET, ERROR, "no operating threshold from the validation scores", threshold)
    rec, stored = v.table("completeness_bracket_records"), v.table("completeness_brackets")
    inj = v.table("completeness_injections")
    variants = ("baseline", *(b.name for b in BRACKETS))
    problems = records_match_injections(rec, inj, sel, variants)
    if not problems:
        problems.update({f"table {c}": m for c, m in tables_differ(stored, bracket_tables(rec, thr, sel.seed)).items()})
    details: dict = {"records": int(len(rec)), "variants": list(variants)}
    if problems or det.audit_arch not in det.archs:  # an external detector's logits are its own business
        details["rederived"] = "not re-injected: " + ("the records are not the bracket injections" if problems else
                                                      f"{det.audit_arch} is an external detector")
        return GateResult(name, ASSET, not problems, ERROR, float(len(problems)), threshold,
                          {**details, "problems": problems}, bound=(None, 0.0))
    from lensaudit.selection.run import load_detector

    model, _, crop = load_detector(v.home, v.profile, "cpu")
    base = rec[rec["variant"] == "baseline"].reset_index(drop=True)
    pick = audit_sample(len(base), n_rows, rng)  # the same injections for every variant: one host read
    ids = base["injection_id"].to_numpy()[pick]
    params = inj.set_index("injection_id").loc[ids].reset_index()
    got = injection_hosts_of(v, params["galaxy_id"])
    if got is None:
        return cannot_compute(name, ASSET, ERROR, "a bracket injection's host is not an injection_hosts row", threshold)
    host_rows, stamps, pos = got
    by_variant = {b.name: b for b in BRACKETS}
    for vname in variants:
        r = rec[rec["variant"] == vname].set_index("injection_id").loc[ids]
        res = inject_and_score(model, stamps, pos, params[list(PARAM_KEYS)], host_rows, crop, "cpu", sel.seed + 2,
                               chunk=len(ids), variant=by_variant.get(vname))
        d = r["logit"].to_numpy(float) - res["logit"].to_numpy(float)
        median = float(np.median(d))
        rec_d = {"median_logit_shift": median, "max_abs_logit_difference": float(np.abs(d).max())}
        if not abs(median) <= LOGIT_MEDIAN_TOL:
            problems[f"{vname}: median"] = f"stored logits {median:+.3g} from the re-injected ones"
        if vname != "clumpy_sources":
            rows_off = int((~(np.abs(d) <= LOGIT_ROW_TOL)).sum())
            obs_off = int((observable(res["arc_snr_matched"].to_numpy()) != r["observable"].to_numpy(bool)).sum())
            rec_d.update(rows_beyond_row_tol=rows_off, observable_off=obs_off)
            if rows_off:
                problems[f"{vname}: rows"] = f"{rows_off} logits beyond {LOGIT_ROW_TOL:g} of the re-injected ones"
            if obs_off:
                problems[f"{vname}: observable"] = f"{obs_off} observable flags not the re-injected arc's"
        details[vname] = rec_d
    details.update(rederived_per_variant=int(len(ids)), problems=problems)
    return GateResult(name, ASSET, not problems, ERROR, float(len(problems)), threshold, details, bound=(None, 0.0))


def specs() -> list[GateSpec]:
    """GateSpecs of this family (concatenated by ``lensaudit.gates.registry``)."""
    from lensaudit.gates.selection_gates import LOGIT_MEDIAN_TOL, LOGIT_ROW_TOL, operating_point_text

    return [spec("completeness_brackets_recomputed", ASSET, ERROR, True,
                 "each bracket variant's records are the brackets' injections (first of every cell, their hosts and host "
                 f"logits); the bracket tables equal those recomputed from the records at {operating_point_text()}; "
                 f"{2 * BRACKET_REDERIVE_ROWS} records per variant re-injected on the CPU reproduce their observable flag "
                 f"and their logits up to the arc noise (median shift <= {LOGIT_MEDIAN_TOL:g}, every row within "
                 f"{LOGIT_ROW_TOL:g}; clumpy sources in median only)", with_audit_rng(brackets_recomputed))]
