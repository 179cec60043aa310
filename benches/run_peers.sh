#!/usr/bin/env bash
# Benchmark psa's CPU Sinkhorn against POT and OTT-JAX (see benches/peers.py).
#
#   benches/run_peers.sh [--psa PATH] [--sizes 1000 2000 4000 8000] [--ts 12 45] ...
#
# Creates the venv ${PSA_BENCH_VENV:-$HOME/.cache/psa-bench-venv} if missing,
# (re)installs benches/peers_requirements.txt whenever that file changes, then runs
# benches/peers.py from the repository root with all arguments passed through.
# --psa (psa-core's peer_solve example) defaults to
# $CARGO_TARGET_DIR/release/examples/peer_solve if CARGO_TARGET_DIR is set, else
# target/release/examples/peer_solve (relative to the repository root). Build it first with
# `cargo build --release -p psa-core --example peer_solve` (psa-core only: no burn, no
# wgpu), or pass --skip-psa to time the peers only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PSA_BENCH_VENV:-$HOME/.cache/psa-bench-venv}"
REQ="$ROOT/benches/peers_requirements.txt"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.psa-peers-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing $REQ into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$REQ"
    echo "$want" > "$stamp"
fi

has_psa=0
for arg in "$@"; do
    case "$arg" in --psa|--psa=*) has_psa=1 ;; esac
done
if [ "$has_psa" = 0 ]; then
    if [ -n "${CARGO_TARGET_DIR:-}" ]; then
        case "$CARGO_TARGET_DIR" in
            /*) target="$CARGO_TARGET_DIR" ;;
            *) target="$ROOT/$CARGO_TARGET_DIR" ;;
        esac
    else
        target="$ROOT/target"
    fi
    set -- --psa "$target/release/examples/peer_solve" "$@"
fi

cd "$ROOT"
exec "$VENV/bin/python" "$ROOT/benches/peers.py" "$@"
