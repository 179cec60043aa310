#!/usr/bin/env bash
# The GPU measurement of issue 15, in under 5 minutes on a lent GPU; prints one markdown table
# to paste into benches/RESULTS.md ("GPU kernel steps"), and leaves logs in $OUT.
#
# Needs a stripped release `psa` built elsewhere at $PSA (the dev machine has no GPU), and the
# Vulkan loader where the machine lacks one. From the repository root of the dev machine:
#   cargo build --release && strip -o .devbin/psa $CARGO_TARGET_DIR/release/psa
#   (loader .debs into .gl/ as /work/.library/device/README.md says; both folders ignored)
# then on the GPU machine, with .devbin and .gl carried:
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
#   PSA=.devbin/psa OUT=$OUT benches/gpu_device.sh
#
# What it runs (every row one `psa bench --backend gpu`, one group, λ = 0.05, Euclidean):
#   * the kernel steps at n = 1e5, T = 12, through PSA_GPU_KERNEL (crates/gpu/src/kernels):
#     step 0 (1 row per invocation, direct differences, running max), step 1 (4 rows),
#     step 2 (+ row frame as a fixed shift), step 3 (+ expanded distance = production), and
#     the production kernel with 1, 2 and 8 rows;
#   * the production kernel with exp2, sqrt, or both stubbed (wrong values, timing only): if
#     stubbing exp2 and sqrt barely helps, the special-function units are not the bound;
#   * one group of 1e6 at T = 12 and T = 45;
#   * |ΔP| of the production kernel against the f64 CPU reference on 16 sampled rows at 1e5
#     (same iterations from the same start);
#   * the SM clock sampled every 0.5 s during all of it (clock.csv), and the counted proxy
#     (`psa bench --kernel-stats`) to calibrate it against the measured times.
# The exp + sqrt bound: each pair costs one exp2 and one sqrt on the special-function units,
# 16 per SM per clock: pairs/s ≤ SMs · 16 · clock / 2 (H100/H200 SXM: 132 SMs).
set -uo pipefail
PSA=${PSA:-target/release/psa}
OUT=${OUT:-gpu-results}
SMS=${SMS:-132}
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} PSA_REQUIRE_GPU=1

nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader \
  >"$OUT/machine.txt" 2>/dev/null || echo "unknown GPU" >"$OUT/machine.txt"
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,utilization.gpu \
  --format=csv,noheader -lms 500 >"$OUT/clock.csv" 2>/dev/null &
clock_pid=$!
trap 'kill $clock_pid 2>/dev/null' EXIT

"$PSA" -q bench --kernel-stats --t 12 >"$OUT/kernel_stats.txt" 2>&1
"$PSA" -q bench --kernel-stats --t 45 >>"$OUT/kernel_stats.txt" 2>&1

# One timed run: label, kernel variant, then psa bench arguments. Appends "label|variant|n|T|
# s/iter|pairs/s" to rows.txt (pairs/s counts both halves: 2·n² per iteration).
run() {
  local label=$1 variant=$2
  shift 2
  local log="$OUT/bench.txt"
  echo "== $label ($variant): psa bench $*" >>"$log"
  local line
  line=$(PSA_GPU_KERNEL=$variant timeout 120 "$PSA" -q bench --backend gpu "$@" 2>>"$log" \
    | tee -a "$log" | awk '$1 == "gpu" {print $2, $3}')
  local n t
  n=$(echo "$*" | sed -n 's/.*--n \([0-9]*\).*/\1/p')
  t=$(echo "$*" | sed -n 's/.*--t \([0-9]*\).*/\1/p')
  echo "$label|$variant|$n|$t|${line% *}|${line#* }" >>"$OUT/rows.txt"
}

: >"$OUT/rows.txt"
N=100000
run "step 0" "rows=1,direct,online-max" --n $N --t 12 --iters 3
run "step 1" "rows=4,direct,online-max" --n $N --t 12 --iters 3
run "step 2" "rows=4,direct" --n $N --t 12 --iters 3
run "step 3 (production)" "" --n $N --t 12 --iters 3
for r in 1 2 8; do run "production, rows=$r" "rows=$r" --n $N --t 12 --iters 3; done
run "exp2 stubbed" "stub-exp2" --n $N --t 12 --iters 3
run "sqrt stubbed" "stub-sqrt" --n $N --t 12 --iters 3
run "exp2 + sqrt stubbed" "stub-exp2,stub-sqrt" --n $N --t 12 --iters 3
run "1e6, T = 12" "" --n 1000000 --t 12 --iters 2
run "1e6, T = 45" "" --n 1000000 --t 45 --iters 1

# |ΔP| against the CPU reference (16 host cores) on sampled rows.
echo "== |ΔP| at 1e5" >>"$OUT/bench.txt"
dp=$(timeout 150 "$PSA" -q bench --backend both --n $N --t 12 --iters 2 --compare-rows 16 \
  2>>"$OUT/bench.txt" | tee -a "$OUT/bench.txt" | sed -n 's/^max |ΔP| \/ row max over [0-9]* rows: //p')

kill $clock_pid 2>/dev/null
clock=$(awk -F', ' '{gsub(/ MHz/, "", $2); if ($2 + 0 > 0) {s += $2; c++; if (min == "" || $2 < min) min = $2}}
  END {if (c) printf "%.0f (min %d)", s / c, min; else print "?"}' "$OUT/clock.csv")
mhz=${clock%% *}
gpu=$(cut -d, -f1 "$OUT/machine.txt")

echo "GPU: $gpu; SM clock during the runs: $clock MHz; exp + sqrt bound at that clock:" \
  "$(awk -v s="$SMS" -v m="$mhz" 'BEGIN {printf "%.2e", s * 16 * m * 1e6 / 2}') pairs/s"
echo "|ΔP| (production kernel vs f64 CPU, 16 sampled rows, n = 1e5, T = 12): ${dp:-?}"
echo
echo "| kernel | PSA_GPU_KERNEL | n | T | s/iter | pairs/s | × exp+sqrt bound |"
echo "|---|---|---:|---:|---:|---:|---:|"
while IFS='|' read -r label variant n t secs rate; do
  ratio=$(awk -v r="$rate" -v s="$SMS" -v m="$mhz" 'BEGIN {
    b = s * 16 * m * 1e6 / 2; if (b > 0 && r + 0 > 0) printf "%.2f", r / b; else print "?"}')
  echo "| $label | ${variant:-(default)} | $n | $t | $secs | $rate | $ratio |"
done <"$OUT/rows.txt"
echo
cat "$OUT/kernel_stats.txt"
