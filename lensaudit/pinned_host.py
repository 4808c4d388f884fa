"""Pinned host blocks page-locked by several threads (PyTorch's caching host allocator).

The streamed selection function and the store scan stage their host stamps in pinned memory.
PyTorch's caching host allocator creates each new pinned block with ``cudaHostAlloc`` by
default, which page-locks the whole block from one thread; with its allocator settings
``pinned_use_cuda_host_register`` and ``pinned_num_register_threads`` (PyTorch's CUDA semantics
notes, ``PYTORCH_CUDA_ALLOC_CONF``) it allocates the block, touches its pages from that many
threads and registers it with ``cudaHostRegister``.  The blocks hold the same bytes either way;
only the time to create them differs.  On H100s the selection function's first run in a
process (77,000 injections, which creates 5-7 pinned blocks) ran 0.95-0.98 s with 8 threads in
three of four processes (1.29 s in a freshly started machine's first process) against
1.16-1.38 s with the default, its blocks created in 0.12-0.16 s against 0.27-0.33 s
(bench/RESULTS.md, session 20).
"""

from __future__ import annotations

import os
import warnings

#: threads that touch a new pinned block's pages before it is registered
PINNED_REGISTER_THREADS = 8

#: the environment variables through which a user configures PyTorch's allocators
_ALLOC_CONF_VARS = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")


def pinned_settings(threads: int = PINNED_REGISTER_THREADS) -> str:
    """The allocator settings string this module applies."""
    return f"pinned_use_cuda_host_register:True,pinned_num_register_threads:{int(threads)}"


_applied: dict[str, bool] = {}  # settings string -> whether torch took it, once per process


def register_pinned_in_threads(threads: int = PINNED_REGISTER_THREADS) -> bool:
    """Process-wide: new pinned host blocks are page-locked by ``threads`` threads from now on.
    A user's own ``PYTORCH_CUDA_ALLOC_CONF`` / ``PYTORCH_ALLOC_CONF`` is left to stand (nothing
    is changed, returns False), as on a machine without CUDA; a torch that refuses the settings
    gets a warning and False.  The settings are handed to torch once per process (some PyTorch
    releases' parser puts the allocator options it is not given back to their defaults: a
    user's later runtime setting is not undone by the next call).  Call it before the first
    pinned allocation it should speed up; blocks already cached are reused as they are."""
    import torch

    if not torch.cuda.is_available() or any(os.environ.get(v) for v in _ALLOC_CONF_VARS):
        return False
    settings = pinned_settings(threads)
    if settings not in _applied:
        try:  # a private torch function: a release without it, or refusing the keys, costs only the speed
            torch.cuda.memory._set_allocator_settings(settings)
            _applied[settings] = True
        except (AttributeError, RuntimeError, ValueError) as exc:
            warnings.warn(f"pinned host blocks stay page-locked by one thread: torch refused {settings!r} "
                          f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=2)
            _applied[settings] = False
    return _applied[settings]
