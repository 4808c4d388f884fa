#!/bin/bash
# One device command re-measuring issue 16's GPU targets at this tree, each against its reference in the same run
# (bench/RESULTS.md "Session 29: issue 16's figures at one commit"):
#   here:   git rev-parse --short HEAD > COMMIT.gpu
#   device: bash bench/run_head_gpu.sh [render] [selection] [tenm] [scan]   (carry COMMIT.gpu, ignored)
# render:    8,192 stamps, 3 bands, 101^2, ss 4, Moffat: eager (the reference), compiled, fused, one process
# selection: 77,000 injections end to end: the compiled renderer with the eager detector (the reference) in one
#            process, then the fused renderer with the compiled detector in two; three timed runs each
# tenm:      10,010,000 injections (385 x 26,000), hosts streamed, fused renderer, compiled detector
# scan:      scoring from a real cutout store incl. I/O at 64^2 and 101^2 (naive loop = the reference; the long
#            scan's marginal rate, --lengths 1,4) and training at 64^2 (eager steps = the reference, CUDA-graph steps)
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=.
cd "$(dirname "$0")/.." || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
echo "cpu cores $(nproc); commit $(cat COMMIT.gpu 2>/dev/null || echo '?')"
t0=$(date +%s)
stamp() { echo "=== $1 (t=$(( $(date +%s) - t0 )) s)"; }
for what in "$@"; do
  case $what in
    render)
      stamp "render: eager, compiled, fused"
      timeout 200 python bench/bench_injection.py --device cuda --batch 8192 --chunk 8192 --fused 2>&1 | grep -v Warning
      ;;
    selection)
      stamp "selection 77k: compiled renderer, eager detector (reference)"
      timeout 130 python bench/bench_selection.py --device cuda --compiled --runs plain --repeat 3 2>&1 \
        | grep -v Warning
      for i in 1 2; do
        stamp "selection 77k: fused renderer, compiled detector, process $i"
        timeout 130 python bench/bench_selection.py --device cuda --compiled --fused --compiled-detector --runs plain \
          --repeat 3 2>&1 | grep -v Warning
      done
      ;;
    tenm)
      stamp "selection 10M: fused renderer, compiled detector"
      timeout 420 python bench/bench_selection.py --device cuda --compiled --fused --compiled-detector \
        --n-per-cell 26000 --group-rows 262144 --runs plain 2>&1 | grep -v Warning
      ;;
    scan)
      stamp "scan and training"
      timeout 420 python bench/bench_detector.py --device cuda --n 32768 --batch 4096 --workers 8 --lengths 1,4 \
        --scan-modes eager --compile-model 2>&1 | grep -v Warning
      ;;
    *) echo "unknown part: $what (render, selection, tenm, scan)"; exit 2 ;;
  esac
done
stamp done
