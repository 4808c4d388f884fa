"""numpy's transparent-huge-page advice, turned off for a lensaudit process and its children.

On Linux numpy asks the kernel for transparent huge pages on every new array of 4 MiB or more
(``madvise(MADV_HUGEPAGE)``, numpy's ``NUMPY_MADVISE_HUGEPAGE`` switch, on by default).  With the
kernel's THP ``defrag`` setting ``madvise`` (a common default) each first touch of such memory
then tries to compact a 2 MiB page directly, in the faulting thread.  Where that fails, as on the
2-core VMs this project is developed and tested on (``AnonHugePages: 0 kB`` in /proc/meminfo after
the attempt), every 4 KiB page still costs the attempt: a new 512 MiB array filled took
23-64 us per 4 KiB page with the advice and 1.6-2.3 us without it, the same process
alternating (``bench/bench_page_faults.py``); reading 23,218 stamps' 21 x 21 px cores from the cutout store into a fresh array
2.0 s against 0.12-0.23 s (bench/RESULTS.md, session 22).  The arrays hold the same bytes either
way; only the time to fault their pages in differs.  Where huge pages do come, going without
them costs TLB reach, not correctness.
"""

from __future__ import annotations

import os

#: numpy's own switch, read when numpy is imported (children inherit it)
ENV = "NUMPY_MADVISE_HUGEPAGE"


def no_hugepage_advice() -> bool:
    """Process-wide: numpy stops advising huge pages for new arrays, in this process (numpy's own
    setter) and in processes it starts (``NUMPY_MADVISE_HUGEPAGE=0`` in the environment, read by
    numpy at import).  A user's own ``NUMPY_MADVISE_HUGEPAGE`` is left to stand: nothing is
    changed and False returned; True when the advice was turned off here."""
    if ENV in os.environ:
        return False
    os.environ[ENV] = "0"
    set_hugepage_advice(False)
    return True


def set_hugepage_advice(on: bool) -> bool:
    """numpy's huge-page advice on or off in this process only (numpy's own setter, which the
    environment variable feeds at import); returns the previous setting."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _set_madvise_hugepage
    return bool(_set_madvise_hugepage(on))
