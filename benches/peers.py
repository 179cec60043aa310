#!/usr/bin/env python3
"""Benchmark psa's CPU Sinkhorn against POT and OTT-JAX on the same inputs.

What
----
For each problem size n (``--sizes``) and number of classes T (``--ts``) a seeded
pair of logit matrices (n x T each, two modalities, a single label group) is drawn.
All three tools solve the same balanced entropic OT problem between the centred
log-ratio (clr, row-centred logits) rows with uniform marginals, the Euclidean
(non-squared) cost and an absolute regulariser epsilon = 0.05, in the log domain:

* psa      ``crates/core/examples/peer_solve.rs`` (psa-core's CPU matcher; only psa-core
           is built: ``cargo build --release -p psa-core --example peer_solve``). It reads
           the raw logits and centres them itself. Two rows: ``psa`` with its defaults
           (Anderson acceleration, f32 passes handing over to f64, costs materialised
           within a 1 GiB budget, epsilon-scaling in tol mode) and ``psa f64 plain``
           (``--precision f64 --no-acceleration --cost-budget 0``: the f64 reference as it
           was before issue 16; ``--skip-psa-plain`` drops it).
* POT      ``ot.sinkhorn(a, b, C, 0.05, method='sinkhorn_log')`` on the dense n x n
           cost ``C = ot.dist(X, Y, 'euclidean')`` (single-threaded numpy, float64).
* OTT-JAX  jitted ``Sinkhorn(lse_mode=True)`` on ``PointCloud(X, Y,
           cost_fn=costs.Euclidean(), epsilon=0.05)`` (absolute epsilon: with
           ``relative_epsilon=None`` OTT >= 0.5 takes a float epsilon as is), CPU, in its
           default float32 (``--ott-x64`` adds float64 rows). With its default
           ``batch_size=None`` it materialises the cost; ``--ott-batch-size B`` adds rows
           for the online (on-the-fly) variant.

Two modes per tool:

* ``fixed K``  exactly K iterations (``--iters``; ``--pot-iters`` for POT), no early
               stop, no epsilon-scaling: gives seconds per iteration. psa's s/iter is
               marginal, ``(t_K - t_1)/(K - 1)`` from two solves in the same process, so its
               one-off setup (materialising the costs) and its final f64 measurement are
               not spread over the K iterations; its "seconds" is the whole K-iteration solve.
* ``tol X``    iterate until the L1 marginal error is <= X (``--tol``), capped at
               ``--max-tol-iters`` iterations and ``--timeout`` seconds of solving.
               psa uses its defaults here (same fixed point, fewer iterations; its time is
               the whole solve, setup included); POT and OTT use plain Sinkhorn, as they do
               by default.

Every measurement runs in its own process (psa example, or ``peers.py --worker``)
reaped with ``os.wait4`` so that its peak RSS (``ru_maxrss``) is per measurement.

Fairness notes
--------------
* Timings exclude process start, imports, data loading, POT's cost-matrix build and
  JAX compilation (OTT is compiled ahead of time with ``jit(...).lower().compile()``,
  then run once, timed with ``block_until_ready``). psa's time is measured around its
  ``CpuMatcher::solve`` call.
* Peak RSS includes everything the process held: POT's n x n cost matrix and
  temporaries, the Python/JAX runtime (see the "worker floor" line in the header:
  a worker that only imports and loads the data), psa's materialised costs.
* The error criterion: psa stops on the larger of its row and column L1 errors, measured
  in f64 on the potentials it returns (checked every iteration); OTT on
  ``||P^T 1 - b||_1`` (``norm_error=1``, checked every ``inner_iterations=10``);
  POT's own ``stopThr`` is the *L2* norm of the column error (every 10 iterations),
  which is up to sqrt(n) times weaker than L1.  So by default (``--pot-tol-mode l1``)
  POT is run in warm-started chunks of ``--pot-chunk`` iterations
  (``warmstart=(log_u, log_v)``) and stopped when the L1 error of its plan is <= tol;
  the chunk restarts cost about one extra n x n pass per chunk (a few % at chunk 10).
  ``--pot-tol-mode stopthr`` instead runs one call with ``stopThr=tol`` and just reports
  the L1 error it reached.
* "L1 err" is recomputed by this script from each peer's final plan/potentials (the
  larger of the row and column L1 errors, in the peer's own precision); psa's is the
  ``marginal_error`` of its report. OTT in float32 may stop on a plateau above tol: its
  row then says "reached: no" and its ratio is a lower bound.
* Threads: every measurement is pinned to ``--threads`` CPUs (default: all this
  process may use) via CPU affinity; psa also gets ``RAYON_NUM_THREADS``, JAX
  ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=true``. POT's logsumexp is single-threaded.

How to run
----------
    cargo build --release -p psa-core --example peer_solve
    benches/run_peers.sh [--sizes 1000 2000 4000 8000] [--ts 12 45] [--iters 10]
                         [--tol 1e-6] [--out FILE]
    benches/run_peers.sh --sizes 500 --ts 12 --skip-psa      # peers only, quick

``run_peers.sh`` makes/updates the venv (``$PSA_BENCH_VENV``, default
``~/.cache/psa-bench-venv``) from ``peers_requirements.txt`` and runs this script.
The default psa example is ``$CARGO_TARGET_DIR/release/examples/peer_solve`` if that is
set, else ``target/release/examples/peer_solve`` under the repository root (``--psa``).

Output columns (Markdown, stdout and ``--out``, default ``benches/peers_latest.md``)
----------------------------------------------------------------------------------
n, T       problem size: n points per modality, T classes (clr dimension).
tool       psa / psa f64 plain / POT / OTT-JAX (``f64``: float64; ``bs=B``: online cost).
mode       ``fixed K`` or ``tol X`` (see above).
s/iter     seconds per iteration (psa fixed: marginal, see above).
iters      iterations run (psa ``tol``: all epsilon-scaling stages counted).
seconds    solve seconds (wall clock, excluding the items listed above); ``> X``:
           the measurement was stopped at the time limit.
L1 err     final L1 marginal error.
reached    whether L1 err <= tol (``tol`` mode); ``-`` in ``fixed`` mode.
peak RSS   peak resident set size of the measuring process, MB (1e6 bytes).
Ratios below the table are peer / psa (> 1: psa is faster), against the ``psa`` row.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

EPSILON = 0.05
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "PEERS-RESULT "
# Extra wall time a process gets on top of --timeout for start-up, imports, data,
# cost matrix and compilation before it is killed.
SETUP_GRACE_S = 180.0


# --------------------------------------------------------------------------- data


def make_logits(n: int, t: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two seeded n x t logit matrices with shared low-rank cluster structure.

    A latent Gaussian mixture (6 clusters in 4 dimensions) is mapped to logits by a
    per-modality loading matrix (modality 2's is a perturbed copy of modality 1's),
    plus independent noise; the two modalities draw different samples and slightly
    different cluster proportions.  Each matrix is scaled so that its clr
    coordinates have unit standard deviation, and shifted per row by a random
    offset (which the clr removes) so that psa really has to centre the logits.
    """
    rng = np.random.default_rng([seed, n, t])
    rank, k = 4, 6
    centers = rng.normal(0.0, 1.5, size=(k, rank))
    w1 = rng.normal(0.0, 1.0 / math.sqrt(rank), size=(rank, t))
    w2 = w1 + rng.normal(0.0, 0.2 / math.sqrt(rank), size=(rank, t))
    props1 = rng.dirichlet(np.full(k, 5.0))
    props2 = rng.dirichlet(np.full(k, 5.0))

    def one(w: np.ndarray, props: np.ndarray) -> np.ndarray:
        z = centers[rng.choice(k, size=n, p=props)] + rng.normal(0.0, 0.5, size=(n, rank))
        logits = z @ w + rng.normal(0.0, 0.5, size=(n, t))
        logits /= clr(logits).std()
        return logits + rng.normal(0.0, 2.0, size=(n, 1))

    return one(w1, props1), one(w2, props2)


def clr(logits: np.ndarray) -> np.ndarray:
    """Centred log-ratio of softmax(logits) = the row-centred logits."""
    return logits - logits.mean(axis=1, keepdims=True)


def write_case(root: Path, n: int, t: int, seed: int) -> Path:
    d = root / f"n{n}_T{t}"
    d.mkdir(parents=True, exist_ok=True)
    s1, s2 = make_logits(n, t, seed)
    np.save(d / "scores1.npy", s1.astype(np.float64))
    np.save(d / "scores2.npy", s2.astype(np.float64))
    np.save(d / "labels1.npy", np.zeros(n, dtype=np.int64))
    np.save(d / "labels2.npy", np.zeros(n, dtype=np.int64))
    np.save(d / "clr1.npy", clr(s1))
    np.save(d / "clr2.npy", clr(s2))
    return d


# ------------------------------------------------------------------ measurements


@dataclass
class Row:
    n: int
    t: int
    tool: str
    mode: str  # "fixed" or "tol"
    iters: Optional[int] = None
    seconds: Optional[float] = None
    error: Optional[float] = None
    reached: Optional[bool] = None
    rss_mb: Optional[float] = None
    timed_out: bool = False  # stopped at the time limit: seconds is a lower bound
    failed: Optional[str] = None
    extra: dict = field(default_factory=dict)

    @property
    def s_per_iter(self) -> Optional[float]:
        if "s_per_iter" in self.extra:
            return self.extra["s_per_iter"]
        if self.seconds is None or not self.iters:
            return None
        return self.seconds / self.iters


@dataclass
class Proc:
    rc: Optional[int]  # None: killed at the time limit
    rss_mb: float
    wall: float
    stdout: str
    stderr: str


def run_measured(cmd: list[str], timeout: float, cpus: set[int], env: dict) -> Proc:
    """Run cmd in its own process group; return exit code, peak RSS and output.

    The child is reaped with os.wait4, whose rusage is that child's alone (ru_maxrss
    in KiB on Linux). On timeout the process group we created is killed.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        killed = False
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.perf_counter() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, ru = os.wait4(proc.pid, 0)
                killed = True
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        rc = None if killed else os.waitstatus_to_exitcode(status)
        proc.returncode = -9 if killed else rc  # already reaped: keep Popen quiet
        out.seek(0)
        err.seek(0)
        return Proc(rc, ru.ru_maxrss * 1024 / 1e6, wall, out.read(), err.read())


def worker_result(p: Proc) -> dict:
    for line in reversed(p.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"worker exit {p.rc}: {error_line(p.stderr)}")


def error_line(stderr: str) -> str:
    """The most telling line of a failed process's stderr (its exception, if any)."""
    lines = [l.strip() for l in stderr.strip().splitlines() if l.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":", 1)[0] or line.startswith("Exception"):
            return line
    return lines[-1] if lines else "no output"


PSA_VARIANTS = {
    "psa": [],
    "psa f64 plain": ["--precision", "f64", "--no-acceleration", "--cost-budget", "0"],
}


def measure_psa(args, case: Path, n: int, t: int, mode: str, env: dict, cpus,
                label: str = "psa") -> Row:
    row = Row(n, t, label, mode)
    cmd = [str(args.psa), str(case / "scores1.npy"), str(case / "scores2.npy"),
           "--epsilon", str(EPSILON)] + PSA_VARIANTS[label]
    if mode == "fixed":
        cmd += ["--fixed", str(args.iters)]
    else:
        cmd += ["--tol", repr(args.tol), "--max-iter", str(args.max_tol_iters)]
    p = run_measured(cmd, args.timeout + SETUP_GRACE_S, cpus, env)
    row.rss_mb = p.rss_mb
    if p.rc is None:
        row.timed_out, row.seconds = True, float(args.timeout)
        return row
    try:
        r = worker_result(p)
    except (RuntimeError, ValueError) as e:
        row.failed = f"{label}: {e}"
        return row
    row.iters, row.seconds, row.error = r["iters"], r["seconds"], r["error"]
    row.extra = {k: v for k, v in r.items() if k not in ("iters", "seconds", "error")}
    if mode == "tol":
        row.reached = row.error <= args.tol
    return row


def measure_peer(args, case: Path, n: int, t: int, tool: str, mode: str, env, cpus,
                 batch_size: int = 0, x64: bool = False) -> Row:
    label = {"pot": "POT", "ott": "OTT-JAX"}[tool]
    if tool == "ott" and x64:
        label += " f64"
    if tool == "ott" and batch_size:
        label += f" bs={batch_size}"
    row = Row(n, t, label, mode)
    iters = args.pot_iters if tool == "pot" else args.iters
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--worker", tool,
        "--worker-mode", mode, "--worker-data", str(case),
        "--iters", str(iters), "--tol", repr(args.tol),
        "--max-tol-iters", str(args.max_tol_iters), "--timeout", str(args.timeout),
        "--pot-tol-mode", args.pot_tol_mode, "--pot-chunk", str(args.pot_chunk),
        "--worker-batch-size", str(batch_size),
    ] + (["--worker-x64"] if x64 else [])
    if tool == "pot":
        cmd[cmd.index("--timeout") + 1] = str(args.pot_timeout)
    timeout = args.pot_timeout if tool == "pot" else args.timeout
    p = run_measured(cmd, timeout + SETUP_GRACE_S, cpus, env)
    row.rss_mb = p.rss_mb
    if p.rc is None:
        row.timed_out, row.seconds = True, float(timeout)
        return row
    try:
        r = worker_result(p)
    except (RuntimeError, ValueError) as e:
        row.failed = f"{label}: {e}"
        return row
    row.iters, row.seconds, row.error = r["iters"], r["seconds"], r["error"]
    row.timed_out = bool(r.get("timed_out"))
    row.extra = {k: v for k, v in r.items() if k not in ("iters", "seconds", "error")}
    if mode == "tol":
        row.reached = row.error is not None and row.error <= args.tol
    return row


def worker_floor(tool: str, case: Path, env, cpus) -> Optional[float]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool,
           "--worker-mode", "floor", "--worker-data", str(case)]
    p = run_measured(cmd, 300, cpus, env)
    return p.rss_mb if p.rc == 0 else None


# ------------------------------------------------------------------------ workers


def l1_errors_from_plan(p: np.ndarray) -> float:
    n, m = p.shape
    return max(np.abs(p.sum(1) - 1.0 / n).sum(), np.abs(p.sum(0) - 1.0 / m).sum())


def worker_pot(a) -> dict:
    import ot

    x, y = np.load(Path(a.worker_data) / "clr1.npy"), np.load(Path(a.worker_data) / "clr2.npy")
    if a.worker_mode == "floor":
        return {}
    n, m = len(x), len(y)
    wa, wb = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    cost = ot.dist(x, y, metric="euclidean")

    def call(k, stop, warm=None):
        t0 = time.perf_counter()
        plan, log = ot.sinkhorn(wa, wb, cost, EPSILON, method="sinkhorn_log", numItermax=k,
                                stopThr=stop, log=True, warn=False, warmstart=warm)
        return plan, log, time.perf_counter() - t0

    if a.worker_mode == "fixed":
        plan, log, secs = call(a.iters, 0.0)
        return {"iters": a.iters, "seconds": secs, "error": l1_errors_from_plan(plan)}
    if a.pot_tol_mode == "stopthr":
        plan, log, secs = call(a.max_tol_iters, a.tol)
        # log["niter"] is the 0-based index of the last iteration run.
        return {"iters": int(log["niter"]) + 1, "seconds": secs,
                "error": l1_errors_from_plan(plan), "pot_l2_err": float(log["err"][-1])}
    done, secs, warm, err = 0, 0.0, None, math.inf
    while done < a.max_tol_iters:
        k = min(a.pot_chunk, a.max_tol_iters - done)
        plan, log, s = call(k, 0.0, warm)
        done, secs, warm = done + k, secs + s, (log["log_u"], log["log_v"])
        err = l1_errors_from_plan(plan)
        if err <= a.tol or secs >= a.timeout:
            break
    return {"iters": done, "seconds": secs, "error": err,
            "timed_out": bool(err > a.tol and secs >= a.timeout)}


def worker_ott(a) -> dict:
    import jax

    # OTT's default is float32; --ott-x64 rows run it in float64.
    jax.config.update("jax_enable_x64", bool(a.worker_x64))
    import jax.numpy as jnp
    from ott.geometry import costs, pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    x = jnp.asarray(np.load(Path(a.worker_data) / "clr1.npy"))
    y = jnp.asarray(np.load(Path(a.worker_data) / "clr2.npy"))
    if a.worker_mode == "floor":
        return {}
    batch = a.worker_batch_size or None

    def geometry(x, y, batch_size):
        # relative_epsilon=None (the default) + float epsilon = absolute epsilon.
        return pointcloud.PointCloud(x, y, cost_fn=costs.Euclidean(), epsilon=EPSILON,
                                     relative_epsilon=None, batch_size=batch_size)

    if a.worker_mode == "fixed":
        inner = math.gcd(a.iters, 10)
        solver = sinkhorn.Sinkhorn(lse_mode=True, threshold=0.0, norm_error=1,
                                   inner_iterations=inner, min_iterations=a.iters,
                                   max_iterations=a.iters)
    else:
        cap = -(-a.max_tol_iters // 10) * 10
        solver = sinkhorn.Sinkhorn(lse_mode=True, threshold=a.tol, norm_error=1,
                                   inner_iterations=10, min_iterations=0, max_iterations=cap)
        inner = 10

    def solve(x, y):
        out = solver(linear_problem.LinearProblem(geometry(x, y, batch)))
        return out.f, out.g, out.errors

    t0 = time.perf_counter()
    compiled = jax.jit(solve).lower(x, y).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    f, g, errors = jax.block_until_ready(compiled(x, y))
    secs = time.perf_counter() - t0
    errors = np.asarray(errors).reshape(len(errors), -1)[:, 0]
    iters = int((errors != -1).sum()) * inner
    # Final L1 errors of both marginals, computed online (no n x n allocation).
    check = geometry(x, y, 1024)
    n, m = x.shape[0], y.shape[0]
    row = float(jnp.abs(check.marginal_from_potentials(f, g, axis=1) - 1.0 / n).sum())
    col = float(jnp.abs(check.marginal_from_potentials(f, g, axis=0) - 1.0 / m).sum())
    last = errors[errors != -1]
    return {"iters": iters, "seconds": secs, "error": max(row, col),
            "ott_err": float(last[-1]) if len(last) else None, "compile_s": compile_s}


def worker_main(a) -> None:
    fn = {"pot": worker_pot, "ott": worker_ott}[a.worker]
    result = fn(a)
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ------------------------------------------------------------------------- report


def fmt_s(v: Optional[float], timed_out: bool = False) -> str:
    if v is None:
        return "—"
    s = f"{v:.3g}" if v < 100 else f"{v:.0f}"
    return f"> {s}" if timed_out else s


def fmt_e(v: Optional[float]) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.1e}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(args, env) -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    from importlib import metadata

    for pkg in ("POT", "jax", "jaxlib", "ott-jax"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    if not args.skip_psa:
        try:
            p = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True, timeout=30)
            commit = p.stdout.strip() or "unknown"
        except OSError:
            commit = "unknown"
        out["psa"] = f"psa-core peer_solve at {commit}"
    return out


def render(args, rows: list[Row], header: dict, floors: dict) -> str:
    lines = [
        "# psa vs POT vs OTT-JAX: entropic OT (log-domain Sinkhorn), CPU",
        "",
        f"- date: {header['date']}",
        f"- machine: {header['cpu']}; nproc {header['nproc']}; "
        f"{header['threads']} CPU(s) used per measurement",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()),
        f"- problem: `make_logits(n, T, seed {args.seed})`, balanced, uniform marginals, "
        f"Euclidean cost on clr(logits), epsilon {EPSILON} (absolute); POT in float64, OTT-JAX "
        f"in its default float32 (rows marked f64: float64), psa as its row says; fixed mode: "
        f"{args.iters} iterations (POT {args.pot_iters}); tol mode: L1 marginal error <= "
        f"{args.tol:g}, at most {args.max_tol_iters} iterations / {args.timeout:g} s "
        f"(POT {args.pot_timeout:g} s); POT tol mode: {args.pot_tol_mode}",
    ]
    if floors:
        lines.append("- worker floor (imports + data, no solve), peak RSS MB: "
                     + ", ".join(f"{k} {v:.0f}" for k, v in floors.items() if v))
    lines += [
        "",
        "| n | T | tool | mode | s/iter | iters | seconds | L1 err | reached | peak RSS MB |",
        "|---:|---:|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        mode = f"fixed {r.iters if r.iters else args.iters}" if r.mode == "fixed" \
            else f"tol {args.tol:g}"
        if r.failed:
            lines.append(f"| {r.n} | {r.t} | {r.tool} | {mode} | failed | | | | | "
                         f"{fmt_s(r.rss_mb)} |")
            continue
        reached = "-" if r.reached is None else ("yes" if r.reached else "**no**")
        spi = fmt_s(r.s_per_iter) if r.iters else "—"
        lines.append(
            f"| {r.n} | {r.t} | {r.tool} | {mode} | {spi} | {r.iters if r.iters else '—'} | "
            f"{fmt_s(r.seconds, r.timed_out)} | {fmt_e(r.error)} | {reached} | "
            f"{fmt_s(r.rss_mb)} |")
    lines += ["", "## Ratios (peer / psa; > 1 means psa is faster)", ""]
    any_ratio = False
    for n in args.sizes:
        for t in args.ts:
            case = [r for r in rows if r.n == n and r.t == t and not r.failed]
            psa = {r.mode: r for r in case if r.tool == "psa"}
            if not psa:
                continue
            for r in case:
                if r.tool == "psa" or r.mode not in psa:
                    continue
                base = psa[r.mode]
                if r.mode == "fixed":
                    if r.s_per_iter and base.s_per_iter:
                        any_ratio = True
                        lines.append(f"- n={n} T={t}: psa vs {r.tool} per-iteration: "
                                     f"{r.s_per_iter / base.s_per_iter:.3g}×")
                elif r.seconds and base.seconds and base.reached:
                    any_ratio = True
                    lower = r.timed_out or not r.reached
                    lines.append(
                        f"- n={n} T={t}: psa vs {r.tool} to tolerance: "
                        f"{'> ' if lower else ''}{r.seconds / base.seconds:.3g}×"
                        + (" (peer did not reach tol)" if lower else ""))
    if not any_ratio:
        lines.append("- (none: psa was skipped or failed)")
    failures = [r.failed for r in rows if r.failed]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def default_psa() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR")
    base = (REPO_ROOT / target) if target and not os.path.isabs(target) else \
        Path(target) if target else REPO_ROOT / "target"
    return base / "release" / "examples" / "peer_solve"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--psa", type=Path, default=None,
                    help="psa-core's peer_solve example (default: %s)" % default_psa())
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--ts", type=int, nargs="+", default=[12, 45])
    ap.add_argument("--iters", type=int, default=10, help="K for fixed mode (default 10)")
    ap.add_argument("--pot-iters", type=int, default=None,
                    help="K for POT's fixed mode (default: --iters; POT is ~4.6 s/iter at n=8000)")
    ap.add_argument("--tol", type=float, default=1e-6, help="L1 marginal tolerance")
    ap.add_argument("--modes", nargs="+", choices=["fixed", "tol"], default=["fixed", "tol"],
                    help="which measurements to run (default: both)")
    ap.add_argument("--max-tol-iters", type=int, default=2000,
                    help="iteration cap in tol mode (default 2000)")
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds of solving per measurement before it is stopped (default 900)")
    ap.add_argument("--pot-timeout", type=float, default=None,
                    help="seconds of solving per POT measurement (default: --timeout)")
    ap.add_argument("--pot-tol-mode", choices=["l1", "stopthr"], default="l1")
    ap.add_argument("--pot-chunk", type=int, default=10,
                    help="iterations per warm-started POT call in --pot-tol-mode l1")
    ap.add_argument("--ott-batch-size", type=int, default=1024,
                    help="also time OTT with an online cost of this batch size (0: skip)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPUs per measurement (default: all available)")
    ap.add_argument("--seed", type=int, default=20240)
    ap.add_argument("--skip-psa", action="store_true")
    ap.add_argument("--skip-psa-plain", action="store_true",
                    help="drop the 'psa f64 plain' rows (the reference without issue 16)")
    ap.add_argument("--ott-x64", action="store_true",
                    help="also time OTT-JAX in float64 (its default is float32)")
    ap.add_argument("--skip-pot", action="store_true")
    ap.add_argument("--skip-ott", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benches" / "peers_latest.md")
    ap.add_argument("--json", type=Path, default=None, help="also write raw rows as JSON")
    # Internal: run one peer measurement in this process.
    ap.add_argument("--worker", choices=["pot", "ott"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-mode", choices=["fixed", "tol", "floor"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-data", help=argparse.SUPPRESS)
    ap.add_argument("--worker-batch-size", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--worker-x64", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.psa = args.psa or default_psa()
    args.pot_iters = args.pot_iters or args.iters
    args.pot_timeout = args.pot_timeout or args.timeout
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0

    avail = sorted(os.sched_getaffinity(0))
    threads = min(args.threads or len(avail), len(avail))
    cpus = set(avail[:threads])
    env = dict(os.environ)
    env.update({
        "RAYON_NUM_THREADS": str(threads),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true "
                      f"intra_op_parallelism_threads={threads}").strip(),
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
    })
    if not args.skip_psa and not os.access(args.psa, os.X_OK):
        print(f"psa example not found at {args.psa} (build it with cargo build --release "
              "-p psa-core --example peer_solve, pass --psa, or use --skip-psa)",
              file=sys.stderr)
        return 2

    header = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "threads": threads,
        "versions": versions(args, env),
    }
    rows: list[Row] = []
    floors: dict = {}
    with tempfile.TemporaryDirectory(prefix="psa-peers-") as tmp:
        for n in args.sizes:
            for t in args.ts:
                case = write_case(Path(tmp), n, t, args.seed)
                if not floors:
                    if not args.skip_pot:
                        floors["POT"] = worker_floor("pot", case, env, cpus)
                    if not args.skip_ott:
                        floors["OTT-JAX"] = worker_floor("ott", case, env, cpus)
                jobs = []
                for mode in args.modes:
                    if not args.skip_psa:
                        jobs.append(lambda m=mode: measure_psa(args, case, n, t, m, env, cpus))
                        if not args.skip_psa_plain:
                            jobs.append(lambda m=mode: measure_psa(args, case, n, t, m, env,
                                                                   cpus, "psa f64 plain"))
                    if not args.skip_pot:
                        jobs.append(lambda m=mode: measure_peer(args, case, n, t, "pot", m,
                                                                env, cpus))
                    if not args.skip_ott:
                        jobs.append(lambda m=mode: measure_peer(args, case, n, t, "ott", m,
                                                                env, cpus))
                        if args.ott_x64:
                            jobs.append(lambda m=mode: measure_peer(args, case, n, t, "ott", m,
                                                                    env, cpus, x64=True))
                        if args.ott_batch_size:
                            jobs.append(lambda m=mode: measure_peer(
                                args, case, n, t, "ott", m, env, cpus, args.ott_batch_size))
                for job in jobs:
                    row = job()
                    rows.append(row)
                    status = row.failed or (
                        f"{fmt_s(row.seconds, row.timed_out)} s, {row.iters} it, "
                        f"err {fmt_e(row.error)}, {fmt_s(row.rss_mb)} MB")
                    print(f"[n={n} T={t}] {row.tool} {row.mode}: {status}",
                          file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r.n, r.t, r.mode != "fixed",
                             {"psa": 0, "psa f64 plain": 1, "POT": 2}.get(r.tool, 3), r.tool))
    report = render(args, rows, header, floors)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": [
            {**r.__dict__, "s_per_iter": r.s_per_iter} for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
