#!/bin/bash
# One device command for the selection-function / renderer PSF benchmarks (bench/RESULTS.md, issue 16 GPU):
# this tree in .gpu_data/sel/new, the previous commit's tree in .gpu_data/sel/prev (carried by the device tool).
#   bash bench/run_sel_gpu.sh [render] [selection] [quick] [profile]
set -u
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
nproc
cd .gpu_data/sel/new || exit 1
echo "new $(cat COMMIT) prev $(cat ../prev/COMMIT)"
for what in "$@"; do
  if [ "$what" = render ]; then
    echo "=== renderer, batch 8192, fused (Moffat spectra without FFT) vs fused with the kernels' rfft2 (previous), same process"
    PYTHONPATH=. python bench/bench_injection.py --device cuda --batch 8192 --chunk 8192 --fused-only
  fi
  if [ "$what" = selection ]; then
    echo "=== selection 77k, fused renderer, NEW"
    PYTHONPATH=. python bench/bench_selection.py --device cuda --compiled --fused --repeat 3
    echo "=== selection 77k, fused renderer, NEW with the previous bootstrap (numpy, host threads) and eager scoring"
    PYTHONPATH=. python bench/bench_selection.py --device cuda --compiled --fused --host-bootstrap --eager-scoring
    echo "=== selection 77k, fused renderer, PREVIOUS commit"
    (cd ../prev && PYTHONPATH=. python bench/bench_selection.py --device cuda --compiled --fused)
  fi
  if [ "$what" = quick ]; then
    echo "=== selection 77k, fused renderer, NEW"
    PYTHONPATH=. python bench/bench_selection.py --device cuda --compiled --fused --repeat 2
    echo "=== selection 77k, fused renderer, PREVIOUS commit"
    (cd ../prev && PYTHONPATH=. python bench/bench_selection.py --device cuda --compiled --fused --runs plain)
  fi
  if [ "$what" = profile ]; then
    echo "=== selection 77k, NEW, profiled"
    PYTHONPATH=. python bench/bench_selection.py --device cuda --compiled --fused --runs plain --profile
  fi
done
