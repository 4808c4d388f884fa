#!/usr/bin/env bash
# EMR bootstrap action (runs as hadoop on every node before Spark starts):
# a Python 3.11 virtual environment holding the lensaudit wheel and its runtime dependencies,
# used by Spark's driver and executors (PYSPARK_PYTHON, set in deploy/README.md's configuration).
#
# Arguments: $1 = s3:// URI of the lensaudit wheel (default: beside this script, lensaudit-0.1.0-py3-none-any.whl).
set -euo pipefail

WHEEL_URI="${1:-}"
VENV=/opt/lensaudit-venv
if [[ -z "$WHEEL_URI" ]]; then
  echo "usage: emr_bootstrap.sh s3://bucket/prefix/lensaudit-<version>-py3-none-any.whl" >&2
  exit 2
fi

sudo dnf install -y python3.11 python3.11-pip
sudo python3.11 -m venv "$VENV"
sudo chown -R hadoop:hadoop "$VENV"
tmp=$(mktemp -d)
aws s3 cp "$WHEEL_URI" "$tmp/"
whl=$(ls "$tmp"/*.whl)
# The cluster's own Spark (EMR 7.x: 3.5.x) runs the jobs: the wheel goes in without its pyspark
# pin, and without the Dagster UI and the detector's torch, which the Spark steps do not import.
"$VENV/bin/pip" install --no-cache-dir --no-deps "$whl"
"$VENV/bin/pip" install --no-cache-dir "dagster-pipes" "boto3>=1.34" "pandas>=2.2,<3" "pyarrow>=17" \
  "numpy>=1.26" "scipy>=1.12" "astropy>=6.1" "healpy>=1.17" "lenscat>=1.1,<2" "fsspec>=2024.2" "s3fs>=2024.2" \
  "requests>=2.31" "pyyaml>=6" "scikit-learn>=1.4"
"$VENV/bin/python" -c "import lensaudit.spark_jobs.entrypoint, dagster_pipes"
rm -rf "$tmp"
