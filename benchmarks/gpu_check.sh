#!/usr/bin/env bash
# The GPU check, for a lent H100/H200, in one call of at most 9 minutes: the CUDA tests, the
# throughput benchmark (seed-style vs eager vs CUDA-graph loop, same GPU, one run; six runs fused
# in one graphed network vs the same six runs as six separate graph-replayed processes side by
# side), the stream-schedule probe of the overlapped evaluation (overlap_probe.py, 40 s), the
# whole paper-scale Snakemake workflow with the README's one-GPU command (all six
# ratios, evaluation every epoch, problems 1-5, report), timed from start to finished report, and
# the one-process paper sweep (in the time left, about its 180-s target; cut, the log shows how
# far it got every 25 epochs); on request (STAGES) also the per-layer convolution probe
# (conv_efficiency.py) and Zhang's whole study (config/zhang.yaml). Every stage runs; the script ends with a table of stages and exits
# non-zero if any failed, so a partial result never passes for a whole one.
#
# Here, once:   bash benchmarks/prepare_device.sh        (MNIST -> .mnist, wheels -> .whl)
# Device tool:  run  command "bash benchmarks/gpu_check.sh"  carry [".mnist", ".whl"]  timeout_s 600
#               (STAGES="tests throughput smoke" for a 2-minute check of the set-up;
#                STAGES="tests workflow_streams workflow_fused": the six runs in one job, side by
#                side on CUDA streams and fused; then STAGES="workflow_mps workflow" on the same
#                warm machine: the six jobs at once under NVIDIA's Multi-Process Service, and by
#                time slices (benchmarks/results/gpu/README.md, "Next GPU calls");
#                STAGES=zhang, a call of its own: Zhang's whole study, config/zhang.yaml;
#                STAGES="tests throughput probe sweep zhang": issue 10's sweep and issue 12's
#                fused numbers in one call, the study in the time left, with a partial record)
# Results land in $OUT (device tool; at most 8 files) or benchmarks/results/gpu/; commit them there.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
STAGES="${STAGES:-tests throughput overlap workflow sweep}"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1

echo "== set-up: wheels the machine lacks (Snakemake ...) into /tmp/site"
python3 - <<'PY' >/tmp/missing-wheels.txt
import importlib.metadata as md, pathlib, re
for wheel in sorted(pathlib.Path(".whl").glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(wheel)
PY
# (compiled to bytecode here, as pip does for a user: else the timed workflow's first Snakemake
# import compiles its modules, seconds that no installed Snakemake spends)
if [ -s /tmp/missing-wheels.txt ]; then
  python3 -m pip install -q --no-index --no-deps --no-cache-dir --target /tmp/site \
    $(cat /tmp/missing-wheels.txt) || { echo "FAILED: wheel install"; exit 1; }
fi
export PYTHONPATH="/tmp/site:$REPO/workflow${PYTHONPATH:+:$PYTHONPATH}" PATH="/tmp/site/bin:$PATH"
if [ -z "${GPU_CHECK_ON_CPU:-}" ]; then  # (set only to try the script itself on a CPU machine)
  python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi
# Versions, and what a job's start costs here before any GPU work (the problem rules and the data
# rules ran 1.5-2.7x slower here than on a 2-core CPU, c87efcd): the kernel (gVisor reports
# 4.4.0), the seconds of `import torch` (cached by the import above on a GPU machine) and whether
# torch's modules have bytecode.
python3 - <<'PY'
import importlib.util, os, platform, time
t = time.perf_counter()
import torch
seconds = time.perf_counter() - t
import snakemake
print("torch", torch.__version__, "snakemake", snakemake.__version__)
print(f"== start-up: kernel {platform.release()}; import torch {seconds:.2f} s;",
      "torch bytecode:", os.path.exists(importlib.util.cache_from_source(torch.__file__)))
PY
test -f .mnist/train-images-idx3-ubyte.gz || { echo "FAILED: .mnist missing (carry it)"; exit 1; }
printf 'data:\n  local_dir: %s\n' "$REPO/.mnist" >/tmp/local-mnist.yaml
# The workflow and the sweep run the configuration's defaults (conv_bias and first_conv: auto,
# the Triton forms on CUDA), as the README's command does; CONV_BIAS=<form>,
# FIRST_CONV=torch|triton and TRITON_EVAL=true|false override them (the overlay /tmp/chosen.yaml)
# On the GPU machine training must run on CUDA: device cuda fails a job at once where auto would
# fall back to the CPU (say, a broken MPS server) and spend the stage's whole limit there.
{
  echo "training:"
  echo "  conv_bias: ${CONV_BIAS:-auto}"
  echo "  first_conv: ${FIRST_CONV:-auto}"
  echo "  triton_eval: ${TRITON_EVAL:-auto}"
  [ -z "${GPU_CHECK_ON_CPU:-}" ] && echo "  device: cuda"
} >/tmp/chosen.yaml

# The workflow stages start from an empty results/ and .snakemake/: a checkout's own (a user who
# runs the check where they work) are moved aside first, never deleted.
saved=".gpu-check-saved/$(date +%Y%m%dT%H%M%S)"
for d in results .snakemake; do
  if [ -e "$d" ]; then
    mkdir -p "$saved" && mv "$d" "$saved/" && echo "== moved the checkout's $d/ to $saved/$d/"
  fi
done

declare -A STATUS
BUDGET="${GPU_CHECK_BUDGET:-570}"  # seconds for the whole check (the device tool allows 600)
stage() {  # stage NAME SECONDS COMMAND [MIN]: run with a time limit (cut to the budget left),
  # record pass/fail and duration; not run when less than MIN seconds (default 10) are left, as
  # a paper-scale workflow cut short would only fail
  local name=$1 limit=$2 start=$SECONDS minimum=${4:-10}
  local left=$((BUDGET - SECONDS - 5))
  ((left < limit)) && limit=$left
  ((limit < minimum)) && {
    STATUS[$name]="not run: ${limit}s left of the budget, it needs ${minimum}s"
    echo "== $name: ${STATUS[$name]}"
    return
  }
  echo "== $name (limit ${limit}s): $3"
  STAGE_LIMIT=$limit timeout -k 15 "$limit" bash -c "set -o pipefail; $3"
  local rc=$?
  STATUS[$name]="rc=$rc $((SECONDS - start))s"
  echo "== $name: ${STATUS[$name]}"
}

workflow() {  # workflow NAME [OVERLAY.yaml [LIMIT RUNS EPOCHS]]: the README's one-GPU command,
  # timed, recorded; with LIMIT, Snakemake is interrupted after LIMIT seconds and the record says
  # how far the RUNS x EPOCHS asked for got (and fails the stage)
  local name=$1 overlay=${2:-} limit=${3:-} runs=${4:-} epochs=${5:-}
  rm -rf results .snakemake
  local t0 wall rc
  t0=$(date +%s.%N)
  ${limit:+timeout -s INT -k 15 $limit} python3 -m snakemake --cores 8 \
    --configfile $overlay /tmp/local-mnist.yaml
  rc=$?
  wall=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
  if [ $rc -ne 0 ]; then
    [ -n "$limit" ] && python3 benchmarks/workflow_record.py --wall "$wall" --partial \
      --runs "$runs" --epochs "$epochs" --preset "config/config.yaml $overlay" \
      --logged-epochs "$OUT/${name}_epochs_logged.csv" \
      --command "${WORKFLOW_COMMAND:-snakemake --cores 8}" --out "$OUT/$name.json" | head -20
    return 1
  fi
  python3 benchmarks/workflow_record.py --wall "$wall" --preset "config/config.yaml $overlay" \
    --command "${WORKFLOW_COMMAND:-snakemake --cores 8}" --out "$OUT/$name.json" || return 1
  cp results/tables/epochs.csv "$OUT/${name}_epochs.csv"
}
with_mps() {  # with_mps COMMAND...: COMMAND with NVIDIA's Multi-Process Service running, so that
  # the six training processes' kernels share the GPU at once instead of taking turns (time
  # slices). A user-level daemon with its own pipe and log folders under /tmp: it changes no
  # setting of the GPU (the compute mode stays as it is) and is stopped afterwards. A client that
  # cannot reach the daemon runs without MPS, silently, so the stage fails unless a first CUDA
  # client started and the daemon lists a server for it.
  command -v nvidia-cuda-mps-control >/dev/null || { echo "FAILED: MPS: no nvidia-cuda-mps-control"; return 1; }
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  rm -rf "$CUDA_MPS_LOG_DIRECTORY"
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d || { echo "FAILED: MPS: the daemon did not start"; return 1; }
  local rc=0
  # a first CUDA client: it must start, and the daemon must have started a server for it (20 s:
  # a sandbox whose GPU proxy lacks MPS can leave the client waiting on a server that never starts)
  timeout 20 python3 -c "import torch; torch.ones(1, device='cuda').sum().item()" \
    || { echo "FAILED: MPS: CUDA does not start under the daemon"; rc=1; }
  local servers
  servers=$(echo get_server_list | timeout 10 nvidia-cuda-mps-control)
  [ $rc -eq 0 ] && [ -z "$servers" ] \
    && { echo "FAILED: MPS: no server for a CUDA client (it ran without MPS)"; rc=1; }
  if [ $rc -eq 0 ]; then
    echo "== MPS server(s): $servers"
    WORKFLOW_COMMAND="nvidia-cuda-mps-control -d; snakemake --cores 8" "$@"
    rc=$?
  fi
  echo "== MPS control log:"; tail -5 "$CUDA_MPS_LOG_DIRECTORY/control.log" 2>/dev/null
  [ $rc -ne 0 ] && { echo "== MPS server log:"; tail -20 "$CUDA_MPS_LOG_DIRECTORY/server.log" 2>/dev/null; }
  echo quit | timeout 30 nvidia-cuda-mps-control
  return $rc
}
export -f workflow with_mps
export OUT REPO

for s in $STAGES; do
  case $s in
    # (its report is in gpu_check.log: the device tool brings back at most 8 files)
    tests) stage tests 120 "python3 -m pytest -q -p no:cacheprovider benchmarks/test_cuda.py" ;;
    throughput) stage throughput 180 "python3 benchmarks/train_throughput.py --device cuda --fused 6 \
      --separate --width 1 --images 6000 --epochs 3 --eval-batch-sizes 1000,5000 --out '$OUT'"
      # What this stage measured fastest per evaluated epoch, each if more than 2 % faster than
      # PyTorch's form; the configuration's auto should agree (else CONV_BIAS=... and the like).
      python3 -c "import json, sys; r = json.load(open(sys.argv[1])); \
        print('== fastest here: conv_bias', r['fastest_conv_bias'], 'first_conv', \
              r['fastest_first_conv'], 'triton_eval', r['fastest_triton_eval'])" \
        "$OUT/train_throughput_cuda_w1_fused_separate.json" ;;
    overlap) stage overlap 120 "python3 benchmarks/overlap_probe.py --device cuda --out '$OUT'" ;;
    probe) stage probe 120 "python3 benchmarks/conv_efficiency.py --out '$OUT'" ;;
    smoke) printf 'training:\n  epochs: 2\nresources:\n  train:\n    threads: 1\n' >/tmp/short.yaml
      stage smoke 150 "workflow workflow_smoke '${SMOKE_OVERLAY:-/tmp/short.yaml}'" ;;
    workflow) stage workflow 300 "workflow workflow /tmp/chosen.yaml" 200 ;;
    # the same with the six jobs' kernels running at once (MPS) instead of by time slices
    workflow_mps) stage workflow_mps 300 "with_mps workflow workflow_mps /tmp/chosen.yaml" 200 ;;
    # the same with the six runs fused in one job (training.runs_per_job: 6): one process, one
    # start-up, the GPU filled by one fused step instead of six jobs' time slices
    workflow_fused) printf 'training:\n  runs_per_job: 6\n' >/tmp/fused6.yaml
      stage workflow_fused 300 "workflow workflow_fused '/tmp/chosen.yaml /tmp/fused6.yaml'" 200 ;;
    # ... and with the six runs side by side in one job (group_form: streams): each its plain
    # network with a single run's kernels, each run's step on its own CUDA stream of one graph
    workflow_streams) printf 'training:\n  runs_per_job: 6\n  group_form: streams\n' >/tmp/streams6.yaml
      stage workflow_streams 300 "workflow workflow_streams '/tmp/chosen.yaml /tmp/streams6.yaml'" 200 ;;
    # Zhang's whole study (config/zhang.yaml: 27 paper-scale runs, nine fused per job), in the
    # time left (alone, STAGES=zhang, it has most of a call): Snakemake is interrupted 30 s before
    # the stage's limit, and the partial record and the logged curves are written (the figure
    # regenerates from zhang_epochs.csv: plot_gpu_records.py --figures zhang_figure1).
    zhang) stage zhang 560 "workflow zhang config/zhang.yaml \$((STAGE_LIMIT - 30)) 27 150" ;;
    sweep) stage sweep 240 "rm -rf /tmp/sweep && python3 benchmarks/paper_sweep.py --mnist .mnist --out /tmp/sweep \
      --config /tmp/chosen.yaml \
      2>&1 | awk '{ if (match(\$0, / epoch [0-9]+\\/150 /)) { split(substr(\$0, RSTART + 7), e, \"/\"); \
        if (e[1] % 25) next } print; fflush() }' \
      && cp /tmp/sweep/sweep.json '$OUT/paper_sweep.json' \
      && cp /tmp/sweep/epochs.csv '$OUT/paper_sweep_epochs.csv'" ;;
    *) echo "unknown stage $s"; STATUS[$s]="unknown" ;;
  esac
done

# (an MPS daemon left by a stage its time limit stopped is stopped here)
if [ -e /tmp/mps-pipe/control ]; then
  echo quit | CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe timeout 30 nvidia-cuda-mps-control 2>/dev/null
fi

echo "== targets (issues 10 and 12)"
python3 - "$OUT" <<'PY' || true
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else None
rows = []
tp = load("train_throughput_cuda_w1_fused_separate.json")
if tp:
    rows.append(("one job, batch 64: images/s >= 40,000", tp["fast_images_per_s"], tp["fast_images_per_s"] >= 40_000))
    rows.append(("... and >= 2.5x the seed-style loop", tp["speedup"], tp["speedup"] >= 2.5))
    rows.append(("6 runs fused >= 1.5x 6 separate graphed jobs (wall aggregate)", tp["fused_vs_separate"], tp["fused_vs_separate"] >= 1.5))
    rows.append(("... and >= 1.5x the jobs' summed images/s", tp["fused_vs_separate_summed"], tp["fused_vs_separate_summed"] >= 1.5))
    for how, seconds in tp.get("evaluated_epoch_seconds", {}).items():
        rows.append((f"one paper epoch trained and evaluated, evaluation {how} (s)", seconds, None))
    for key in ("triton_eval_vs_torch_eval", "triton_eval_vs_torch_evaluated_epoch"):
        if tp.get(key):
            rows.append((f"Triton evaluation epilogues vs PyTorch's: {key.split('torch_')[1]}", tp[key], None))
    for what in ("", "_eval", "_evaluated_epoch"):
        if tp.get(f"triton_first_conv_vs_torch{what}"):
            rows.append((f"first convolution in Triton vs cuDNN: {what.lstrip('_') or 'training'}", tp[f"triton_first_conv_vs_torch{what}"], None))
    if tp.get("fused_triton_bias_vs_triton_bias"):
        rows.append(("6 runs fused with the Triton epilogues vs one job with them", tp["fused_triton_bias_vs_triton_bias"], None))
    if tp.get("streams_vs_one_job"):
        rows.append(("6 runs side by side on streams vs one job (PyTorch's passes)", tp["streams_vs_one_job"], None))
    for key, what in (("streams_triton_vs_one_job", "one job"), ("streams_triton_vs_fused_triton_bias", "6 runs fused")):
        if tp.get(key):
            rows.append((f"6 runs side by side on streams, Triton kernels, vs {what} with them", tp[key], None))
    for form in ("gemm", "after_pool", "triton"):
        for what in ("", "_eval", "_evaluated_epoch"):
            key = f"{form}_bias_vs_add{what}"
            if tp.get(key):
                rows.append((f"conv_bias {form} vs add: {what.lstrip('_') or 'training'}", tp[key], None))
for name, what in (("workflow", ""), ("workflow_fused", ", six runs fused in one job"), ("workflow_streams", ", six runs side by side on streams of one job"), ("workflow_mps", ", six jobs under MPS")):
    wf = load(f"{name}.json")
    if wf:
        rows.append((f"paper-scale workflow{what} <= 150 s", wf["workflow_wall_seconds"], wf["workflow_wall_seconds"] <= 150))
        outside = list(wf.get("train_job_outside_loop_seconds", {}).values())
        if outside:  # start-up (process, imports, data, CUDA) and the outputs, per training job
            rows.append(("... its training jobs outside their epoch loops, longest (s)", max(outside), None))
        pauses = list(wf.get("train_job_checkpoint_pause_seconds", {}).values())
        if pauses:  # the loops' stops for checkpoints (host copies; the files go in the background)
            rows.append(("... their loops' stops for checkpoints, longest (s)", max(pauses), None))
zh = load("zhang.json")
if zh:
    wall = zh["workflow_wall_seconds"] if zh["finished"] else zh["projected_wall_seconds"] or float("inf")
    what = "" if zh["finished"] else f" (stopped: {zh['run_epochs_done']}/{zh['run_epochs_asked']} run-epochs; projected)"
    rows.append((f"config/zhang.yaml workflow (27 runs) <= 300 s{what}", wall, wall <= 300))
sw = load("paper_sweep.json")
if sw:
    rows.append(("one-process paper sweep <= 180 s", sw["sweep_wall_seconds"], sw["sweep_wall_seconds"] <= 180))
for what, value, ok in rows:
    print(f"{'info  ' if ok is None else 'met   ' if ok else 'MISSED'} {what}: {value:,.2f}")
for key, value in (tp or {}).items():
    if key.endswith("_error"):  # a candidate that could not be timed
        print(f"ERROR  {key}: {value}")
PY
echo "== summary"
failed=0
for s in $STAGES; do
  echo "$s: ${STATUS[$s]}"
  [[ ${STATUS[$s]} == rc=0* ]] || failed=1
done
[ $failed -eq 0 ] && echo "GPU CHECK PASSED" || echo "GPU CHECK FAILED"
exit $failed
