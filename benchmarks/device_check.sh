#!/usr/bin/env bash
# The one prepared call on a lent GPU machine for issue 12 (H200, Python 3.12, torch + CUDA,
# no pydantic, no gymnasium, no internet): the CUDA tests, then benchmarks/gpu.py, into $OUT.
#
# Before the call, here (needs the package index, not the GPU):
#   echo /.whl/ >> .git/info/exclude
#   bash benchmarks/device_check.sh --download-wheels
# Then: device run, carry [".whl"], command "bash benchmarks/device_check.sh", timeout ~560 s.
# Locally, as a check of the script itself (the wheels are for 3.12: leave them out):
#   NO_WHEELS=1 PYTHON=.venv/bin/python BUDGET_S=60 bash benchmarks/device_check.sh
set -o pipefail
python=${PYTHON:-python3}
# The project's needs the H200's image lacks (versions as requirements.lock pins them).
wheels=(pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    gymnasium==1.4.0 farama-notifications==0.0.6 typing-extensions==4.16.0)
if [ "$1" = "--download-wheels" ]; then
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "${wheels[@]}"
fi
out=${OUT:-/tmp/esper-device}
mkdir -p "$out"
if [ -d .whl ] && [ -z "$NO_WHEELS" ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src:benchmarks${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
# the CUDA-only tests, and the ones of the paths they build on (loader, vmap, compile, timing)
"$python" -m pytest -q -p no:cacheprovider tests/tolaria/test_cuda.py \
    tests/tolaria/test_cuda_grouped.py tests/tolaria/test_grouped.py \
    tests/tolaria/test_timing.py tests/tolaria/test_compiling.py 2>&1 | tee "$out/cuda_tests.txt"
tests=$?
"$python" benchmarks/gpu.py --budget-s "${BUDGET_S:-400}" 2>&1 | tee "$out/gpu_benchmark.txt"
benchmark=$?
echo "tests exit $tests, benchmark exit $benchmark"
[ "$tests" -eq 0 ] && [ "$benchmark" -eq 0 ]  # the call fails if either did
