#!/bin/bash
# One device command for the one-pass raw_robust kernel (issue 16; bench/RESULTS.md "Session 21"): this tree in
# .gpu_data/new (carried by the device tool), its commit in .gpu_data/new/COMMIT:
#   here:   rm -rf .gpu_data/new && mkdir -p .gpu_data/new && git archive HEAD | tar -x -C .gpu_data/new \
#           && git rev-parse --short HEAD > .gpu_data/new/COMMIT
#   device: bash .gpu_data/new/bench/run_robust_gpu.sh [crops]   (carry .gpu_data; ~8 min)
# 1. the kernel against torch's CUDA operations, to the bit (planted cases and random stamps; exit 1 on a difference)
# 2. the scan (bench_detector --lengths 1,4: the marginal rate of a long call), eager and compiled model, raw_robust by
#    torch / by the kernel, cuDNN's default / timed algorithm choice, in one process per crop; raw_robust alone both ways
# 3. the selection function (77,000 injections), raw_robust by torch / by the kernel, one process each, alternating
#    (the first timed run of each process in brackets)
# Session 22 (H100): equal, and faster in 2 and 3, so preprocess.KERNEL_ON_CUDA is on (bench/RESULTS.md).
set -u
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
cd "$(dirname "$0")/.." || exit 1
echo "commit $(cat COMMIT 2>/dev/null || echo unknown)"
out=${OUT:-/tmp}
t0=$(date +%s)
echo "=== 1. check_robust_kernel"
PYTHONPATH=. timeout 90 python bench/check_robust_kernel.py --n 32768 2>&1 | tail -3 | tee "$out/check.log"
for crop in ${1:-101 64}; do
  echo "=== 2. bench_detector, crop $crop (t=$(( $(date +%s) - t0 )) s)"
  PYTHONPATH=. timeout 240 python bench/bench_detector.py --device cuda --n 32768 --batch 4096 --skip-train \
    --lengths 1,4 --workers 4 --scan-modes eager --compile-model --robust torch,kernel --cudnn-benchmark off,on \
    --handoff --crops "$crop" 2>&1 | grep -v Warning > "$out/det_$crop.log"
  grep -E "marginal|alone|equal|vs eager" "$out/det_$crop.log" | cut -c1-240
done
for r in torch kernel torch kernel; do
  echo "=== 3. selection, raw_robust $r (t=$(( $(date +%s) - t0 )) s)"
  PYTHONPATH=. timeout 90 python bench/bench_selection.py --device cuda --compiled --fused --compiled-detector \
    --runs plain --repeat 3 --robust $r 2>&1 | grep -v Warning | tee -a "$out/sel.log" | grep -E "no stage|warm-up" | cut -c1-200
done
echo "total $(( $(date +%s) - t0 )) s"
