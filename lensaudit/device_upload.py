"""Host arrays onto a torch device without a stream synchronisation.

CUDA synchronises the stream before every copy from *pageable* host memory to the device
(CUDA runtime API, "API synchronization behavior"), so each small
``torch.as_tensor(array, device="cuda")`` in a loop makes the host wait for all the work it
has queued: the host cannot run ahead of the device.  ``to_device`` stages a CUDA upload in
pinned memory and copies it asynchronously (PyTorch's caching host allocator keeps the pinned
block until the copy has run); anywhere else it is ``torch.as_tensor``.  The values are
``torch.as_tensor``'s: a ``dtype`` cast happens on the host, as there.  ``to_device_beside``
uploads a large array from a background thread on a side stream instead (no pinned copy).
"""

from __future__ import annotations

import numpy as np
import torch


def to_device(a, device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.as_tensor(a, dtype=dtype, device=device)``, asynchronous from pinned memory on CUDA."""
    if torch.device(device).type != "cuda":
        return torch.as_tensor(a, dtype=dtype, device=device)
    return torch.as_tensor(a, dtype=dtype).pin_memory().to(device, non_blocking=True)


def columns_to_device(cols: dict, device, dtype: torch.dtype) -> dict:
    """``{key: to_device(np.asarray(v, float64), device, dtype)}`` with every 1-D column of the
    common length stacked into one upload (views of one (n_columns, N) block on the device)."""
    arrs = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    lengths = {v.shape[0] for v in arrs.values() if v.ndim == 1}
    flat = [k for k, v in arrs.items() if v.ndim == 1] if len(lengths) == 1 else []
    out = {}
    if flat:
        block = to_device(np.stack([arrs[k] for k in flat]), device, dtype)
        out.update({k: block[i] for i, k in enumerate(flat)})
    out.update({k: to_device(v, device, dtype) for k, v in arrs.items() if k not in out})
    return {k: out[k] for k in arrs}


def to_device_beside(t: torch.Tensor, device) -> torch.Tensor:
    """``t`` (a host tensor) on ``device``; on CUDA copied on a side stream and finished before
    returning, so a background thread's upload overlaps the work queued on the current stream
    (pageable memory: no pinned staging copy of a large array).  The caller records the
    result's use on its own stream (``Tensor.record_stream``)."""
    device = torch.device(device)
    if device.type != "cuda":
        return t.to(device)
    side = torch.cuda.Stream(device)
    with torch.cuda.stream(side):
        out = t.to(device, non_blocking=True)
    side.synchronize()
    return out
