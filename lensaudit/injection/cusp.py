"""Constants of the cusp refinement (``render._cusp_average``), shared by the torch renderer
and the fused Triton renderer (``fused.py``), which imports them from here (not from
``render``, which imports ``fused``)."""

CUSP_SPLIT = 2            # children per axis at each refinement level
CUSP_NEAR = 4.0           # refine a cell whose ray-shot centre is within 4 source-plane cell sizes of the source centre
CUSP_MIN_FRACTION = 0.01  # ... until the cell is smaller than 1 % of R_sersic sqrt(q_src) (n = 4; see cusp_min_cell)
CUSP_LEVELS = 10          # at most 10 levels below the supersampled grid (cells of pixel / (ss 2^10))
CUSP_MAX_CELLS = 2_000_000
