"""A frozen detector's forward pass replayed from a CUDA graph (PyTorch's "whole network
capture"): one launch per batch instead of ~100, for scoring loops whose host thread is
the bottleneck.  Captured once per (model, input shape, dtype, device, autocast dtype);
the graph runs the eager kernels, so its outputs are the eager ones (or, on request, those of
``torch.compile``).  Used by the scan
(``detector.score.score_store``) and the selection function (``selection.inject.score_stamps``)."""

from __future__ import annotations

import warnings
import weakref

import torch

#: model -> {(shape, dtype, device, autocast dtype): (static input, replay, static output) or None}
_GRAPHS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def graphed_forward(model, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
                    autocast_dtype: torch.dtype | None = None, prepare=None, compiled: bool = False):
    """(static input, replay, static output) of ``model`` in eval mode without gradients, for
    inputs of ``shape`` / ``dtype`` on ``device`` (channels_last), under ``torch.autocast(autocast_dtype)`` when
    given (weight casts recorded in the graph: autocast's cache is off inside); None where
    the forward cannot be captured (the caller then runs it eagerly, with a warning).
    ``prepare``: a function captured in the same graph before the model (in float32, outside
    autocast), e.g. the preprocessing of raw stamps; the static input is then contiguous (the
    raw stamps' layout) and ``prepare`` returns the model's input.  Part of the cache key, so
    pass the same function object each time (not a fresh lambda).
    ``compiled``: the graph records ``torch.compile(model)``'s kernels (compiled in the warm-up,
    outside the capture) instead of the eager ones: Inductor's fusions and one launch per batch;
    the outputs are then the compiled model's (bf16 rounding away from the eager ones)."""
    per = _GRAPHS.setdefault(model, {})
    device = torch.device(device)
    key = (tuple(shape), dtype, str(device), autocast_dtype, prepare, compiled)
    if key not in per:
        net = torch.compile(model, dynamic=False) if compiled else model

        def forward(x):
            if prepare is not None:
                x = prepare(x)
            if autocast_dtype is None:
                return net(x)
            with torch.autocast("cuda", dtype=autocast_dtype, cache_enabled=False):
                return net(x)
        try:
            static_in = torch.zeros(shape, dtype=dtype, device=device)
            if prepare is None:
                static_in = static_in.contiguous(memory_format=torch.channels_last)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(2):  # warm-up outside the capture (cuDNN plans, workspaces)
                    forward(static_in)
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: a loader thread may allocate pinned memory meanwhile
            with torch.no_grad(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = forward(static_in)
            per[key] = (static_in, graph.replay, static_out)
        except RuntimeError as e:  # e.g. a model with host syncs inside: score it eagerly
            warnings.warn(f"detector forward not capturable as a CUDA graph ({e}); scoring eagerly")
            per[key] = None
    return per[key]


def replay_rows(graph, x: torch.Tensor) -> torch.Tensor:
    """Run a ``graphed_forward`` graph on the rows of ``x`` (at most its batch): ``x`` is copied
    into the static input, the rows beyond it zeroed, the graph replayed; the static output's
    first ``len(x)`` rows come back as a view, which the next replay overwrites."""
    static_in, replay, static_out = graph
    m = len(x)
    static_in[:m] = x
    static_in[m:] = 0
    replay()
    return static_out[:m]
