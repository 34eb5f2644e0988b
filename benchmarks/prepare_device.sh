#!/usr/bin/env bash
# Prepare, on a machine with internet, what an offline GPU machine with PyTorch but without
# Snakemake needs for benchmarks/gpu_check.sh. Writes two git-ignored folders to copy along:
#   .mnist/  the four MNIST IDX files (from $HW5_MNIST_DIR, default ../shared/data/mnist)
#   .whl/    wheels for Python $PY_VERSION (default 3.12) / x86-64 of Snakemake, pytest and
#            every other dependency of the workflow but PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
SNAKEMAKE_VERSION="${SNAKEMAKE_VERSION:-$("$PY" -c 'import snakemake; print(snakemake.__version__)')}"
MNIST="${HW5_MNIST_DIR:-../shared/data/mnist}"
PY_VERSION="${PY_VERSION:-3.12}"

grep -qxF "/.mnist/" .git/info/exclude 2>/dev/null || echo "/.mnist/" >>.git/info/exclude
rm -rf .mnist .whl && mkdir -p .mnist .whl
cp "$MNIST"/*-ubyte* .mnist/

quiet() { grep -v "is ignored: it is neither" || true; }
# connection_pool, a Snakemake dependency, is published as a source archive only: build its
# (pure-Python) wheel here so that the binary-only download below can use it.
"$PY" -m pip wheel -q --no-deps -w .whl "connection_pool>=0.0.3" 2>&1 | quiet
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 \
  manylinux1_x86_64 any; do platforms+=(--platform "$p"); done
"$PY" -m pip download -q --dest .whl --find-links .whl --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp "${platforms[@]}" "snakemake==$SNAKEMAKE_VERSION" latex2mathml jsonschema pytest pandas matplotlib seaborn \
  jinja2 pyyaml tqdm \
  2>&1 | quiet
count=$(ls .whl/*.whl | wc -l)
echo "prepared .mnist ($(ls .mnist | wc -l) files) and .whl ($count wheels, $(du -sh .whl | cut -f1))"
test "$count" -gt 20 && test "$(ls .mnist | wc -l)" -eq 4
