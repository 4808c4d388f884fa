"""Where a GPU waits: idle gaps of the device in a torch.profiler chrome trace, attributed to code.

A gap is an interval in which no kernel, copy or memset runs on any stream.  Each gap is charged
(i) to the innermost ``lensaudit`` Python frame that launched the work ending it (what the host was
doing while the device starved) and (ii) to the innermost ``lensaudit`` frame running on the host
when it began.  Host synchronisations (stream / device / event syncs and blocking copies) are
counted by the frame that called them, and the device's own time (every kernel, copy and memset)
by the frame that launched it (a CUDA graph's kernels by the frame that replayed the graph).  Last,
the idle time is charged to every torch operator and CUDA runtime / driver call that the host was
inside meanwhile (e.g. ``cudaMalloc``: an allocation, not a launch, held the device's next work).
Needs a trace recorded with ``with_stack=True``.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

DEVICE_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
SYNC_NAMES = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def _frames(events: list[dict]):
    py = [e for e in events if e.get("cat") == "python_function" and "lensaudit" in e.get("name", "")]
    ts = np.array([e["ts"] for e in py], dtype=np.float64)
    end = ts + np.array([e.get("dur", 0.0) for e in py], dtype=np.float64)
    tid = np.array([hash(e.get("tid")) for e in py])
    names = [e["name"] for e in py]
    return ts, end, tid, names


def _innermost(t: float, tid_hash: int, ts, end, tid, names) -> str:
    m = np.flatnonzero((ts <= t) & (end >= t) & (tid == tid_hash))
    if not len(m):
        return "(no lensaudit frame)"
    inner = m[np.argsort(ts[m])[::-1][:2]]  # the innermost frame and its lensaudit caller
    return "  <  ".join(names[i] for i in inner)


def _overlap_by_name(calls: list[dict], gaps: list[tuple]) -> tuple[dict, dict]:
    """Seconds of each named host call (e.g. ``cudaMalloc``) that fall inside the device's idle gaps,
    and how many calls overlap a gap: what the host was inside while the device had no work."""
    starts = np.array([g[0] for g in gaps], dtype=np.float64)
    ends = np.array([g[1] for g in gaps], dtype=np.float64)
    inside, count = defaultdict(float), defaultdict(int)
    for e in calls:
        s, f = e["ts"], e["ts"] + e.get("dur", 0.0)
        i = int(np.searchsorted(starts, f, side="right")) - 1  # the last gap starting before the call ends
        hit = False
        while i >= 0 and ends[i] > s:
            inside[e["name"]] += min(f, ends[i]) - max(s, starts[i])
            hit, i = True, i - 1
        count[e["name"]] += hit
    return inside, count


def report(trace_path: str, min_gap_us: float = 10.0, top: int = 14) -> str:
    with open(trace_path) as fh:
        events = json.load(fh)["traceEvents"]
    dev = sorted((e for e in events if e.get("cat") in DEVICE_CATS and "dur" in e), key=lambda e: e["ts"])
    if not dev:
        return "no device events in the trace"
    launch = {e["args"]["correlation"]: e for e in events
              if e.get("cat") == "cuda_runtime" and "correlation" in e.get("args", {})}
    ts, end, tid, names = _frames(events)
    busy = 0.0
    cur_s, cur_e = dev[0]["ts"], dev[0]["ts"] + dev[0]["dur"]
    gaps = []  # (start, end, event ending it)
    for e in dev[1:]:
        s, f = e["ts"], e["ts"] + e["dur"]
        if s > cur_e:
            busy += cur_e - cur_s
            if s - cur_e >= min_gap_us:
                gaps.append((cur_e, s, e))
            cur_s, cur_e = s, f
        else:
            cur_e = max(cur_e, f)
    busy += cur_e - cur_s
    span = cur_e - dev[0]["ts"]
    by_launch, by_start, n_launch = defaultdict(float), defaultdict(float), defaultdict(int)
    for g0, g1, e in gaps:
        rt = launch.get(e.get("args", {}).get("correlation"))
        if rt is None:
            key = "(launch not found)"
        else:
            key = _innermost(rt["ts"], hash(rt.get("tid")), ts, end, tid, names)
            by_start[_innermost(g0, hash(rt.get("tid")), ts, end, tid, names)] += g1 - g0
        by_launch[key] += g1 - g0
        n_launch[key] += 1
    work, nwork = defaultdict(float), defaultdict(int)  # device time by the frame that launched it
    for e in dev:
        rt = launch.get(e.get("args", {}).get("correlation"))
        key = ("(launch not found)" if rt is None
               else _innermost(rt["ts"], hash(rt.get("tid")), ts, end, tid, names))
        work[f"{key}  [{e['cat']}]" if e["cat"] != "kernel" else key] += e["dur"]
        nwork[f"{key}  [{e['cat']}]" if e["cat"] != "kernel" else key] += 1
    ops = [e for e in events if e.get("cat") in ("cpu_op", "cuda_runtime", "cuda_driver") and "dur" in e]
    in_gaps, n_in_gaps = _overlap_by_name(ops, gaps)  # torch operators and runtime calls the host was inside
    syncs, nsync = defaultdict(float), defaultdict(int)
    for e in events:
        if e.get("cat") == "cuda_runtime" and e.get("name", "").startswith(SYNC_NAMES):
            k = _innermost(e["ts"], hash(e.get("tid")), ts, end, tid, names)
            syncs[k] += e.get("dur", 0.0)
            nsync[k] += 1
    gap_total = sum(g1 - g0 for g0, g1, _ in gaps)
    out = [f"device span {span / 1e6:.3f} s, busy {busy / 1e6:.3f} s, idle {(span - busy) / 1e6:.3f} s "
           f"({len(gaps)} gaps >= {min_gap_us:.0f} us: {gap_total / 1e6:.3f} s)"]
    for title, d, extra in (("idle charged to the frame launching the work that ends the gap", by_launch, n_launch),
                            ("idle charged to the frame running when the gap began", by_start, None),
                            ("host waits in synchronisations, by calling frame", syncs, nsync),
                            ("device time (kernels; copies and memsets marked) by the frame that launched it",
                             work, nwork),
                            ("idle time inside each torch operator / CUDA runtime call on the host (nested ones "
                             "count in each)", in_gaps, n_in_gaps)):
        out.append(f"-- {title} (s, count):")
        for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:2 * top if d is work else top]:
            out.append(f"  {v / 1e6:7.3f}  {(extra or {}).get(k, ''):>6}  {k}")
    return "\n".join(out)
