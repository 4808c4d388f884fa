"""A shorter GIL switch interval while one thread launches GPU work beside background threads.

Every torch call releases the GIL and takes it back when it returns.  If a background thread
(the stream's host-group reader, the bootstrap's raw draws) holds it then, CPython makes the
launching thread wait until that thread gives it up or until the switch interval has passed
(``sys.setswitchinterval``, 5 ms by default), and the device runs dry meanwhile: in profiles of
the streamed selection function on an H100 the device sat idle in gaps of ~5 ms inside the
smallest torch calls (bench/RESULTS.md, "Selection function, session 17").  A shorter interval
bounds each such wait; the numbers computed do not depend on it.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

#: switch interval [s] while the selection function streams on a GPU (CPython's default: 0.005 s)
GPU_LAUNCH_SWITCH_INTERVAL_S = 0.0001


@contextmanager
def short_switch_interval(interval_s: float | None = None, enabled: bool = True):
    """Within the block the interpreter's switch interval is at most ``interval_s`` (default
    ``GPU_LAUNCH_SWITCH_INTERVAL_S``; a process-wide setting: the value found is put back on exit,
    also after an exception); ``enabled=False``: unchanged."""
    old = sys.getswitchinterval()
    if enabled:
        sys.setswitchinterval(min(old, float(GPU_LAUNCH_SWITCH_INTERVAL_S if interval_s is None else interval_s)))
    try:
        yield
    finally:
        sys.setswitchinterval(old)
