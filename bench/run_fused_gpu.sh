#!/bin/bash
# One device command for the fused-renderer benchmarks (bench/RESULTS.md, issue 16 GPU):
#   bash bench/run_fused_gpu.sh render | selection | all
set -u
export PYTHONPATH=.
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
echo "commit $(cat COMMIT 2>/dev/null)"
what=${1:-all}
if [ "$what" = render ] || [ "$what" = all ]; then
  echo "=== renderer, batch 8192: eager / compiled (previous) / fused, same rows, same process"
  python bench/bench_injection.py --device cuda --batch 8192 --chunk 8192 --fused
  echo "=== renderer, fused only, batch 65536 in chunks of 32768"
  python bench/bench_injection.py --device cuda --batch 65536 --chunk 32768 --fused-only
fi
if [ "$what" = selection ] || [ "$what" = all ]; then
  echo "=== selection 77k, compiled renderer (previous)"
  python bench/bench_selection.py --device cuda --compiled
  echo "=== selection 77k, fused renderer"
  python bench/bench_selection.py --device cuda --compiled --fused
fi
if [ "$what" = tenm ]; then
  echo "=== selection 10M (385 x 26,000), fused renderer, no stage syncs"
  python bench/bench_selection.py --device cuda --compiled --fused --n-per-cell 26000 --group-rows 262144 --runs plain
fi
