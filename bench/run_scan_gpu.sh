#!/bin/bash
# One device command for the scan benchmark (bench/RESULTS.md "Scan and training throughput", issue 16 GPU):
# this tree in .gpu_data/scan (carried by the device tool), its commit in .gpu_data/scan/COMMIT:
#   here:   rm -rf .gpu_data/scan && mkdir -p .gpu_data/scan && git archive HEAD | tar -x -C .gpu_data/scan \
#           && git rev-parse --short HEAD > .gpu_data/scan/COMMIT
#   device: bash .gpu_data/scan/bench/run_scan_gpu.sh [extra bench_detector.py options]   (carry .gpu_data/scan)
# Eager, CUDA-graph (model), CUDA-graph (raw_robust + model) scans, and the same three with the compiled
# model (batch 4096 only), in the same process
# at 64^2 and 101^2, batch 4096 (8192 measured slower), 4, 8 and 16 reader threads, each mode's max |dlogit| vs the
# eager scan, the two bounds (store reads alone, device work alone); training skipped (measured).
# Read tasks of a whole batch (the default) and of 512 / 256 rows (score_store's read_chunk), the main
# thread's waits per scan, the host-to-device copies alone and under concurrent reads (--handoff), and the
# I/O path alone per thread count (--io-bounds).
set -u
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python -c "import torch; print('torch', torch.__version__)"
echo "cpu cores $(nproc)"
cd "$(dirname "$0")/.." || exit 1
echo "commit $(cat COMMIT 2>/dev/null || echo unknown)"
log=${OUT:-/tmp}/scan.log
PYTHONPATH=. timeout 560 python bench/bench_detector.py --device cuda --batch 4096 --workers 4,8,16 \
  --read-chunks batch,512,256 --scan-modes eager,graph,graph-pre --compile-model --skip-train --handoff --io-bounds \
  "$@" 2>&1 | tee "$log"
