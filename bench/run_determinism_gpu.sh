#!/bin/bash
# One device command (bench/RESULTS.md, "The selection function on a GPU, byte for byte"): this tree at the
# repository root (its commit in .gpu_data/sel/NEW_COMMIT), the previous commit's tree in .gpu_data/sel/prev
# (`git archive` + COMMIT; carried by the device tool); logs under $OUT.
#   bash bench/run_determinism_gpu.sh [determinism_prev] [selection] [same_numbers]
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
W="grep -v -i warn"
echo "new: $(cat .gpu_data/sel/NEW_COMMIT); prev: $(cat .gpu_data/sel/prev/COMMIT)"
echo "=== determinism and renderer rates, NEW tree"
PYTHONPATH=. timeout 150 python bench/check_gpu_determinism.py --device cuda --time-rows 8192 2>&1 | $W | tee $OUT/det_new.log
echo "=== renderer rates, PREV tree"
PYTHONPATH=.gpu_data/sel/prev timeout 60 python bench/check_gpu_determinism.py --device cuda --time-rows 8192 --time-only 2>&1 | $W | tee $OUT/time_prev.log
for what in "$@"; do
  if [ "$what" = determinism_prev ]; then
    echo "=== determinism, PREV tree"
    PYTHONPATH=.gpu_data/sel/prev timeout 150 python bench/check_gpu_determinism.py --device cuda 2>&1 | $W | tee $OUT/det_prev.log
  fi
  if [ "$what" = same_numbers ]; then
    echo "=== the selection function's records and table, NEW vs PREV and NEW twice (bench/selection_records.py)"
    PYTHONPATH=. timeout 120 python bench/selection_records.py save $OUT/new 2>&1 | $W
    (cd .gpu_data/sel/prev && PYTHONPATH=. timeout 120 python ../../../bench/selection_records.py save $OUT/prev 2>&1 | $W)
    PYTHONPATH=. timeout 120 python bench/selection_records.py save $OUT/new2 2>&1 | $W
    python bench/selection_records.py compare $OUT/new $OUT/prev
    python bench/selection_records.py compare $OUT/new $OUT/new2
  fi
  if [ "$what" = selection ]; then
    echo "=== selection 77k, NEW"
    PYTHONPATH=. timeout 60 python bench/bench_selection.py --device cuda --compiled --fused --runs plain --repeat 3 2>&1 | $W | tee $OUT/sel_new.log
    echo "=== selection 77k, PREV"
    (cd .gpu_data/sel/prev && PYTHONPATH=. timeout 60 python bench/bench_selection.py --device cuda --compiled --fused --runs plain --repeat 3 2>&1 | $W | tee $OUT/sel_prev.log)
  fi
done
