#!/usr/bin/env bash
# Materialise the detector and its evaluation through Dagster on a GPU machine that has
# torch/torchvision but neither Spark nor the mock sky: the inputs come from
# `lensaudit export-training` (a home of their own), Dagster from a folder of wheels.
#
#   deploy/gpu_detector_run.sh WHEEL_DIR EXPORTED_HOME [OUT_DIR] [ARCH]
#
# The step picks CUDA through the device resource (LENSAUDIT_DEVICE=cuda), writes best.pt,
# run_info.json (assets/detector/<arch>/) and evaluation.json (assets/detector_evaluation/<arch>/)
# under EXPORTED_HOME and runs the
# detector_evaluation checks; OUT_DIR receives those files and Dagster's log.
set -euo pipefail
wheels=${1:?wheel folder}; home=$(cd "${2:?exported home}" && pwd); out=${3:-.}; arch=${4:-resnet18}
python3 -m pip install -q --no-index --find-links "$wheels" "dagster==1.13.*" 2>&1 | grep -v "^$" || true
python3 -c "import dagster, torch, torchvision; print('dagster', dagster.__version__, 'torch', torch.__version__, \
'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
export PYTHONPATH=$PWD LENSAUDIT_HOME=$home LENSAUDIT_DEVICE=cuda LENSAUDIT_PROFILE=
mkdir -p "$out"
t0=$(date +%s)
set +e
python3 -m dagster asset materialize -f definitions.py --select "detector,detector_evaluation" --partition "$arch" \
  > "$out/dagster_materialize.log" 2>&1
rc=$?
set -e
echo "dagster asset materialize exit $rc in $(( $(date +%s) - t0 )) s"
grep -E "STEP_SUCCESS|STEP_FAILURE|ASSET_MATERIALIZATION|ASSET_CHECK_EVALUATION|RUN_SUCCESS|RUN_FAILURE" \
  "$out/dagster_materialize.log" | sed -E 's/^.* - ([A-Z_]+) - /\1 - /' | cut -c1-220 || true
for f in "detector/$arch/run_info.json" "detector_evaluation/$arch/evaluation.json"; do
  if [ -f "$home/assets/$f" ]; then cp "$home/assets/$f" "$out/$(basename "$f")"; fi
done
exit $rc
