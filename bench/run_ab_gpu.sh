#!/bin/bash
# One device command comparing this tree with a previous commit's on the GPU (issue 16; bench/RESULTS.md):
#   here:   rm -rf .gpu_data/prev && mkdir -p .gpu_data/prev && git archive <rev> | tar -x -C .gpu_data/prev \
#           && git rev-parse --short <rev> > .gpu_data/prev/COMMIT && git rev-parse --short HEAD > COMMIT.gpu
#   device: bash bench/run_ab_gpu.sh [records] [render] [selection]   (carry .gpu_data/prev and COMMIT.gpu, both ignored)
# records:   the selection function's per-injection records and table of both trees, compared byte for byte
# render:    the fused renderer (8,192 stamps), this tree with its variants and stage breakdown, then both trees
#            alternating (this tree's bench script, each tree's library)
# selection: 77,000 injections end to end, both trees alternating (the previous first: a machine's first process also
#            compiles what both share), one process each, three timed runs (the first timed run first)
set -u
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
cd "$(dirname "$0")/.." || exit 1
new=$PWD prev=$PWD/.gpu_data/prev out=${OUT:-/tmp}
echo "new $(cat COMMIT.gpu 2>/dev/null || echo '?') (+ working tree) prev $(cat "$prev/COMMIT")"
t0=$(date +%s)
for what in "$@"; do
  if [ "$what" = records ]; then
    echo "=== records (t=$(( $(date +%s) - t0 )) s)"
    PYTHONPATH=. timeout 120 python bench/selection_records.py save "$out/new" 2>&1 | grep -v Warning | tail -2
    (cd "$prev" && PYTHONPATH=. timeout 120 python bench/selection_records.py save "$out/prev" 2>&1 | grep -v Warning | tail -2)
    PYTHONPATH=. python bench/selection_records.py compare "$out/new" "$out/prev"; echo "compare exit $?"
  fi
  if [ "$what" = render ]; then
    echo "=== render, new, with variants (t=$(( $(date +%s) - t0 )) s)"
    PYTHONPATH=. timeout 150 python bench/bench_injection.py --device cuda --batch 8192 --chunk 8192 --fused-only \
      2>&1 | grep -v Warning
    for tree in prev new prev new; do
      echo "=== render, $tree (t=$(( $(date +%s) - t0 )) s)"
      d=$new; [ $tree = prev ] && d=$prev
      (cd "$d" && PYTHONPATH=. timeout 90 python "$new/bench/bench_injection.py" --device cuda --batch 8192 \
        --chunk 8192 --fused-only --no-extras 2>&1 | grep -E "stamps/s|vs eager")
    done
  fi
  if [ "$what" = selection ]; then
    for tree in prev new prev new; do
      echo "=== selection, $tree (t=$(( $(date +%s) - t0 )) s)"
      d=$new; [ $tree = prev ] && d=$prev
      (cd "$d" && PYTHONPATH=. timeout 100 python bench/bench_selection.py --device cuda --compiled --fused \
        --compiled-detector --runs plain --repeat 3 2>&1 | grep -v Warning | grep -E "no stage|warm-up|device:" | cut -c1-220)
    done
  fi
done
echo "total $(( $(date +%s) - t0 )) s"
