"""Score a cutout store with a frozen detector, I/O overlapped with the device.

Batches of index rows are read from the memory-mapped shards by ``workers`` threads
(numpy copies release the GIL) straight into pinned host buffers, copied to the device
asynchronously, normalised there by ``raw_robust`` and scored in bf16 (channels_last) on
CUDA; on the CPU the same code runs in float32.  Returns logits in index order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

from lensaudit.detector.preprocess import raw_robust


def score_store(index: pd.DataFrame, reader, model, device: str, crop: int = 64, batch: int = 4096,
                workers: int = 4) -> np.ndarray:
    """Logits for the ``cutout_ok`` rows of ``index`` (raises on any other row)."""
    if not index["cutout_ok"].all():
        raise ValueError("score_store takes cutout_ok rows only")
    cuda = device.startswith("cuda")
    n = len(index)
    starts = list(range(0, n, batch))
    n_buf = workers + 2
    bufs = [torch.empty((batch, reader.bands, reader.size, reader.size), dtype=torch.float32, pin_memory=cuda)
            for _ in range(min(n_buf, len(starts)) or 1)]
    out = torch.empty(n, dtype=torch.float32, device=device)
    model.eval()
    copied: dict[int, torch.cuda.Event] = {}

    def load(i: int):
        s = starts[i]
        rows = index.iloc[s:s + batch]
        buf = bufs[i % len(bufs)]
        reader.read(rows, out=buf.numpy()[:len(rows)])
        return i, len(rows)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, torch.no_grad():
        pending = [pool.submit(load, i) for i in range(min(len(bufs) - 1, len(starts)))]
        nxt = len(pending)
        for _ in range(len(starts)):
            i, m = pending.pop(0).result()
            x = bufs[i % len(bufs)][:m].to(device, non_blocking=True)
            if cuda:
                copied[i] = torch.cuda.Event()
                copied[i].record()
            y, _ = raw_robust(x, crop=crop)
            if cuda:
                y = y.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out[starts[i]:starts[i] + m] = model(y).float().squeeze(1)
            if nxt < len(starts):
                prev = copied.pop(nxt - len(bufs), None)  # the batch that last used this buffer
                if prev is not None:
                    prev.synchronize()
                pending.append(pool.submit(load, nxt))
                nxt += 1
    return out.cpu().numpy().astype(np.float64)
