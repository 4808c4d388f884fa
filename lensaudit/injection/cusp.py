"""Constants of the cusp refinement (``render._cusp_average``) and how its cells are summed
(``subtree_sums``), shared by the torch renderer and the fused Triton renderer (``fused.py``),
which imports them from here (not from ``render``, which imports ``fused``)."""

import torch

CUSP_SPLIT = 2            # children per axis at each refinement level
CUSP_NEAR = 4.0           # refine a cell whose ray-shot centre is within 4 source-plane cell sizes of the source centre
CUSP_MIN_FRACTION = 0.01  # ... until the cell is smaller than 1 % of R_sersic sqrt(q_src) (n = 4; see cusp_min_cell)
CUSP_LEVELS = 10          # at most 10 levels below the supersampled grid (cells of pixel / (ss 2^10))
CUSP_MAX_CELLS = 2_000_000


#: how the cells' contributions are summed per owner: "auto" (sequential on the CPU, tree on CUDA),
#: "sequential" or "tree" (tests force "tree" on the CPU)
CELL_SUMS = "auto"


def use_subtree_sums(x) -> bool:
    """True where the cusp cells of tensor ``x`` are summed by ``subtree_sums`` (``CELL_SUMS``)."""
    return x.is_cuda if CELL_SUMS == "auto" else CELL_SUMS == "tree"


def subtree_sums(levels: list, split: int) -> torch.Tensor:
    """Per top-level cell (owner), the sum of its refined cells' contributions over all levels,
    children before parents: deterministic (no atomics), used on CUDA.  ``levels[L]`` =
    (contrib, refined): contrib (P_L * split,), the contributions of the level's cells (the
    ``split`` children of each of its P_L parents, contiguous; a refined child's entry 0), and
    refined, the ascending indices of the children refined further, who are the next level's
    parents in that order.  On CUDA ``index_add_`` into the owners adds with atomics in
    whatever order the threads run, and the selection function's numbers changed in their last
    bits from run to run (bench/check_gpu_determinism.py, bench/RESULTS.md); on the CPU the
    renderers keep the sequential ``index_add_`` (their bytes)."""
    sub = None
    for contrib, refined in reversed(levels):
        if sub is not None:
            contrib = contrib.index_put((refined,), sub)  # a refined child carries its subtree's sum
        sub = contrib.view(-1, split).sum(dim=1)
    return sub
