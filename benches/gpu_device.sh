#!/usr/bin/env bash
# Records psa's GPU figures on a machine with a real GPU (how benches/RESULTS.md's GPU rows were
# measured). Expects a stripped release `psa` at $PSA (built elsewhere), optionally the GPU test
# binaries in $PSA_TESTS (a folder), and writes logs into $OUT (default ./gpu-results).
#
#   PSA=.devbin/psa PSA_TESTS=.devbin/tests OUT=/tmp/r benches/gpu_device.sh [quick|full]
set -uo pipefail
PSA=${PSA:-target/release/psa}
OUT=${OUT:-gpu-results}
mode=${1:-full}
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} PSA_REQUIRE_GPU=1
log() { echo "== $*" | tee -a "$OUT/bench.txt"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  nproc; grep -m1 "model name" /proc/cpuinfo; } | tee "$OUT/machine.txt"

if [ -n "${PSA_TESTS:-}" ]; then
  # The GPU kernel tests (GPU vs CPU reference vs POT), on this GPU instead of lavapipe.
  for t in "$PSA_TESTS"/*; do
    log "test $(basename "$t")"
    "$t" --test-threads 1 2>&1 | grep -E "^test |test result" | tee -a "$OUT/tests.txt"
  done
fi

bench() { log "psa bench $*"; "$PSA" -q bench "$@" 2>&1 | tee -a "$OUT/bench.txt"; }
# GPU against the CPU reference in one process (CPU to-tolerance runs only where they are short).
bench --backend both --n 1000 --t 12 --iters 20 --to-tol --max-iter 3000
bench --backend both --n 10000 --t 12 --iters 10
bench --backend both --n 10000 --t 45 --iters 5
bench --backend both --n 100000 --t 12 --iters 2 --compare-rows 16
[ "$mode" = quick ] && exit 0
bench --backend gpu --n 1000000 --t 12 --iters 3 --compare-rows 4
bench --backend gpu --n 1000000 --t 45 --iters 2 --compare-rows 4
bench --backend gpu --n 10000 --t 12 --iters 10 --to-tol --max-iter 3000
bench --backend gpu --n 1000 --t 12 --groups 200 --iters 20 --to-tol --max-iter 3000
bench --backend gpu --n 100000 --t 12 --iters 10 --to-tol --max-iter 2000
