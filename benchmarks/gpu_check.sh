#!/usr/bin/env bash
# The GPU check: on any machine with an NVIDIA GPU and this project installed (pip install -e .),
# run from the repository root:
#
#   bash benchmarks/gpu_check.sh                       # tests throughput workflow sweep
#   STAGES="tests throughput" bash benchmarks/gpu_check.sh
#
# Stages: tests (the CUDA tests, tests/cuda), throughput (benchmarks/train_throughput.py at paper
# width), workflow (the README's one-GPU command on the paper configuration, timed from start to
# finished report), workflow_mps (the same under NVIDIA's Multi-Process Service), sweep (the
# label-noise sweep in one process, benchmarks/paper_sweep.py), zhang (config/zhang.yaml), smoke
# (a 2-epoch workflow: a quick check of the set-up). MNIST comes from MNIST_DIR (a folder with the
# four IDX files; default .mnist when it exists) or, without it, is downloaded. Offline, put
# wheels of what the machine lacks in .whl/ (benchmarks/prepare_device.sh fills it and .mnist).
# Records land in OUT (default benchmarks/results/gpu/<date>); the script ends with a table of
# stages and exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
OUT="${OUT:-benchmarks/results/gpu/$(date +%Y%m%d-%H%M)}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
STAGES="${STAGES:-tests throughput workflow sweep}"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$REPO/workflow${PYTHONPATH:+:$PYTHONPATH}"

if [ -d .whl ]; then  # offline: install the carried wheels whose package the machine lacks
  missing=$(python3 -c 'import importlib.metadata as md, pathlib, re
for wheel in sorted(pathlib.Path(".whl").glob("*.whl")):
    try:
        md.version(re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower())
    except md.PackageNotFoundError:
        print(wheel)')
  [ -n "$missing" ] && python3 -m pip install -q --no-index --no-deps --target /tmp/site $missing
  export PYTHONPATH="/tmp/site:$PYTHONPATH" PATH="/tmp/site/bin:$PATH"
fi
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, snakemake; print('torch', torch.__version__, 'snakemake', snakemake.__version__)"
MNIST_DIR="${MNIST_DIR:-$([ -d .mnist ] && echo "$REPO/.mnist")}"
# On the GPU machine training must run on CUDA: device cuda fails a job at once where auto would
# fall back to the CPU and spend the stage's limit there.
{
  [ -n "$MNIST_DIR" ] && printf 'data:\n  local_dir: %s\n' "$MNIST_DIR"
  printf 'training:\n  device: cuda\n'
} >/tmp/gpu-check.yaml

# The workflow stages start from an empty results/ and .snakemake/: a checkout's own are moved
# aside first, never deleted.
saved=".gpu-check-saved/$(date +%Y%m%dT%H%M%S)"
for d in results .snakemake; do
  [ -e "$d" ] && mkdir -p "$saved" && mv "$d" "$saved/" && echo "== moved $d/ to $saved/$d/"
done

declare -A STATUS
stage() {  # stage NAME SECONDS COMMAND: run with a time limit, record pass/fail and duration
  local name=$1 limit=$2 start=$SECONDS
  echo "== $name (limit ${limit}s): $3"
  timeout -k 15 "$limit" bash -c "set -o pipefail; $3"
  local rc=$?
  STATUS[$name]="rc=$rc $((SECONDS - start))s"
  echo "== $name: ${STATUS[$name]}"
}
workflow() {  # workflow NAME OVERLAY...: the README's one-GPU command, timed and recorded
  local name=$1
  shift
  rm -rf results .snakemake
  local t0 wall
  t0=$(date +%s.%N)
  ${WORKFLOW_PREFIX:-} python3 -m snakemake --cores 8 --configfile "$@" /tmp/gpu-check.yaml \
    || return 1
  wall=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
  python3 benchmarks/workflow_record.py --wall "$wall" --preset "config/config.yaml $*" \
    --command "snakemake --cores 8" --out "$OUT/$name.json" || return 1
  cp results/tables/epochs.csv "$OUT/${name}_epochs.csv"
}
with_mps() {  # with_mps COMMAND...: COMMAND with NVIDIA's Multi-Process Service running (a
  # user-level daemon with its own folders under /tmp; no GPU setting changes), stopped after
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d || { echo "FAILED: MPS daemon did not start"; return 1; }
  "$@"
  local rc=$?
  echo quit | timeout 30 nvidia-cuda-mps-control
  return $rc
}
export -f workflow with_mps
export OUT REPO

for s in $STAGES; do
  case $s in
    tests) stage tests 300 "python3 -m pytest -q -p no:cacheprovider tests/cuda" ;;
    throughput) stage throughput 300 "python3 benchmarks/train_throughput.py --device cuda \
      --width 1 --images 6000 --epochs 3 --out '$OUT'" ;;
    smoke) printf 'training:\n  epochs: 2\n' >/tmp/short.yaml
      stage smoke 300 "workflow workflow_smoke /tmp/short.yaml" ;;
    workflow) stage workflow 900 "workflow workflow config/config.yaml" ;;
    workflow_mps) stage workflow_mps 900 "with_mps workflow workflow_mps config/config.yaml" ;;
    zhang) stage zhang 3600 "workflow zhang config/zhang.yaml" ;;
    sweep) stage sweep 900 "rm -rf /tmp/sweep && python3 benchmarks/paper_sweep.py \
      ${MNIST_DIR:+--mnist '$MNIST_DIR'} --out /tmp/sweep --device cuda \
      && cp /tmp/sweep/sweep.json '$OUT/paper_sweep.json' \
      && cp /tmp/sweep/epochs.csv '$OUT/paper_sweep_epochs.csv'" ;;
    *) echo "unknown stage $s"; STATUS[$s]="unknown" ;;
  esac
done

echo "== summary"
failed=0
for s in $STAGES; do
  echo "$s: ${STATUS[$s]}"
  [[ ${STATUS[$s]} == rc=0* ]] || failed=1
done
[ $failed -eq 0 ] && echo "GPU CHECK PASSED" || echo "GPU CHECK FAILED"
exit $failed
