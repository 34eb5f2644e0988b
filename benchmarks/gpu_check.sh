#!/usr/bin/env bash
# The GPU check, for a lent H100/H200 (about 12 minutes): CUDA tests, the throughput benchmark
# (seed-style vs fast loop) and the paper-scale sweep (6 ratios x 150 epochs x 6,000 images).
#
# Prepare once here, then call the device tool's run with carry [".mnist"]:
#   echo /.mnist/ >> .git/info/exclude; mkdir -p .mnist; cp ../shared/data/mnist/*.gz .mnist/
#   run: bash benchmarks/gpu_check.sh        (timeout_s 600)
# Results land in $OUT (device tool) or benchmarks/results/gpu; commit them there.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"

echo "== CUDA tests"
timeout 120 python3 -m pytest -q -p no:cacheprovider benchmarks/test_cuda.py 2>&1 \
  | tee "$OUT/cuda-tests.txt"

echo "== throughput: seed-style vs fast loop, paper-scale model"
timeout 150 python3 benchmarks/train_throughput.py --device cuda --width 1 --images 6000 \
  --epochs 3 --out "$OUT"

echo "== paper-scale sweep (training of all 6 ratios)"
timeout 420 python3 benchmarks/paper_sweep.py --mnist .mnist --out "$OUT" 2>&1 \
  | grep -v " epoch [0-9]*/150 " | tail -40
