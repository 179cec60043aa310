#!/usr/bin/env python3
"""Cross-modal prediction on the development suite (issue 14), psa against a plain Python
pipeline, in one run.

For each data set and seed:

1. the units are split 80/20 (seeded) into training and held-out units; the training units'
   two modalities are shuffled independently (the ids are kept for evaluation only);
2. psa's defaults match the training units (`psa match --x1 --x2`, no tuning flags), then
   `psa predict --run` trains f: modality 2 -> modality 1 with its defaults (unbiased loss,
   `--epsilon-grid 1,4,16,random`, chosen by the validation pseudo-pair MSE), and the same
   command trains the references: `--epsilon-grid 1` (the run's own λ only), `--epsilon-grid
   random` (random matching), `--true-pairs`;
3. the plain Python pipeline on the same training files: StandardScaler + scikit-learn
   MLPClassifier(128) with 5-fold cross_val_predict, centred log-probabilities, POT
   `sinkhorn_log` at λ = 0.05 within each label group, one pseudo-pair drawn per modality-1
   row, and an MLPRegressor(256, 256) on the standardised pseudo-pairs;
4. every predictor predicts the held-out units' modality-1 rows from their modality-2 rows;
   R² = 1 − MSE / MSE(mean of the truth) on the raw modality-1 features.

Usage:
    benches/quality/prediction.py --psa target/release/psa --seeds 0 1 2 \
        [--sets tabular-noise0.1 tabular-noise0.6 digits pbmc68k] [--out prediction.jsonl]
Run under `nice -n 10`: it uses both cores.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402  (the data sets and the classifier pipeline of the matching suite)

SETS = ["tabular-noise0.1", "tabular-noise0.6", "tabular-noise1.5", "digits", "pbmc68k"]


def full_set(psa, name, seed, work):
    """x1, x2, labels, ids for the same units in the same order."""
    if name.startswith("tabular-noise"):
        noise = name[len("tabular-noise"):]
        subprocess.run(
            [psa, "-q", "generate", "tabular", "--n-per-group", "150", "--noise", noise,
             "--seed", str(seed), "--out", os.path.join(work, "generated"), "--force"],
            check=True, stdout=subprocess.DEVNULL,
        )
        g = lambda f: np.load(os.path.join(work, "generated", f), allow_pickle=False)  # noqa: E731
        ids1, ids2 = g("ids1.npy").reshape(-1).astype(str), g("ids2.npy").reshape(-1).astype(str)
        order = {u: j for j, u in enumerate(ids2)}
        p2 = np.array([order[u] for u in ids1])
        return (g("x1.npy").astype(np.float64), g("x2.npy")[p2].astype(np.float64),
                g("labels1.npy").reshape(-1).astype(str), ids1)
    x1, x2, labels, _, ids = suite.real_set(name)
    return np.asarray(x1, np.float64), np.asarray(x2, np.float64), labels.astype(str), ids.astype(str)


def split(psa, name, seed, root):
    work = os.path.join(root, f"{name}-seed{seed}")
    os.makedirs(work, exist_ok=True)
    x1, x2, labels, ids = full_set(psa, name, seed, work)
    rng = np.random.default_rng(seed)
    units = rng.permutation(len(labels))
    test, train = units[: len(units) // 5], units[len(units) // 5:]
    p1, p2 = rng.permutation(train), rng.permutation(train)
    files = {
        "x1.npy": x1[p1].astype(np.float32), "x2.npy": x2[p2].astype(np.float32),
        "labels1.npy": labels[p1], "labels2.npy": labels[p2],
        "ids1.npy": ids[p1], "ids2.npy": ids[p2],
        "test_x2.npy": x2[test].astype(np.float32), "test_x1.npy": x1[test],
    }
    for f, a in files.items():
        np.save(os.path.join(work, f), a)
    return work


def r2(pred, truth):
    return float(1 - ((pred - truth) ** 2).sum() / ((truth - truth.mean(0)) ** 2).sum())


def psa_runs(psa, work, seed):
    j = lambda f: os.path.join(work, f)  # noqa: E731
    base = [psa, "-q"]
    subprocess.run(base + ["match", "--x1", j("x1.npy"), "--x2", j("x2.npy"),
                           "--labels1", j("labels1.npy"), "--labels2", j("labels2.npy"),
                           "--ids1", j("ids1.npy"), "--ids2", j("ids2.npy"),
                           "--out", j("run"), "--force", "--seed", str(seed)], check=True)
    summary = json.load(open(j("run/summary.json")))
    mean = summary["mean"]
    out = {"trace_x_random": mean["trace"] / mean["random_trace"], "foscttm": mean["foscttm"]}
    variants = {
        "psa_default": ["--run", j("run")],
        "psa_run_lambda": ["--run", j("run"), "--epsilon-grid", "1"],
        "psa_random": ["--run", j("run"), "--epsilon-grid", "random"],
        "psa_true_pairs": ["--true-pairs", "--ids1", j("ids1.npy"), "--ids2", j("ids2.npy")],
    }
    truth = np.load(j("test_x1.npy"))
    for name, extra in variants.items():
        start = time.time()
        model = j(f"model_{name}")
        subprocess.run(base + ["predict", "--x1", j("x1.npy"), "--x2", j("x2.npy"), "--out", model,
                               "--force", "--seed", str(seed)] + extra, check=True)
        subprocess.run(base + ["apply", "--model", model, "--x2", j("test_x2.npy"),
                               "--out", j(f"pred_{name}.npy")], check=True)
        out[name] = r2(np.load(j(f"pred_{name}.npy")), truth)
        out[name + "_seconds"] = time.time() - start
        if name == "psa_default":
            card = json.load(open(os.path.join(model, "predictor.json")))
            chosen = min(card["provenance"]["candidates"], key=lambda c: c["validation_pair_mse"])
            out["psa_chosen"] = chosen["coupling"]
    return out


def python_pipeline(work, seed):
    import ot
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    j = lambda f: np.load(os.path.join(work, f), allow_pickle=False)  # noqa: E731
    x1, x2 = j("x1.npy").astype(np.float64), j("x2.npy").astype(np.float64)
    l1, l2 = j("labels1.npy").astype(str), j("labels2.npy").astype(str)
    start = time.time()
    scores = []
    for x, lab in ((x1, l1), (x2, l2)):
        model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(128,), learning_rate_init=1e-3,
                                                              random_state=seed))
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            p = cross_val_predict(model, x, lab, cv=folds, method="predict_proba")
        lp = np.log(np.clip(p, suite.PROB_FLOOR, 1.0))
        scores.append(lp - lp.mean(1, keepdims=True))
    rng = np.random.default_rng(seed)
    partner = np.full(len(l1), -1)
    for c in np.unique(l1):
        rows1, rows2 = np.flatnonzero(l1 == c), np.flatnonzero(l2 == c)
        if len(rows2) == 0:
            continue
        h1, h2 = scores[0][rows1], scores[1][rows2]
        M = np.sqrt(((h1[:, None, :] - h2[None, :, :]) ** 2).sum(-1))
        a, b = np.full(len(rows1), 1 / len(rows1)), np.full(len(rows2), 1 / len(rows2))
        G = ot.sinkhorn(a, b, M, suite.GROUPS_EPSILON, method="sinkhorn_log")
        P = G / G.sum(1, keepdims=True)
        for k, i in enumerate(rows1):
            partner[i] = rows2[rng.choice(len(rows2), p=P[k] / P[k].sum())]
    keep = partner >= 0
    sx, sy = StandardScaler().fit(x2), StandardScaler().fit(x1)
    reg = MLPRegressor(hidden_layer_sizes=(256, 256), learning_rate_init=1e-3, early_stopping=True, random_state=seed,
                       max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(sx.transform(x2[partner[keep]]), sy.transform(x1[keep]))
    pred = sy.inverse_transform(reg.predict(sx.transform(j("test_x2.npy").astype(np.float64))))
    return {"python_ot": r2(pred, j("test_x1.npy")), "python_seconds": time.time() - start}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--psa", required=True)
    ap.add_argument("--sets", nargs="+", default=SETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--work", default="/tmp/psa-prediction-suite")
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    for name in args.sets:
        for seed in args.seeds:
            work = split(args.psa, name, seed, args.work)
            row = {"set": name, "seed": seed, **psa_runs(args.psa, work, seed),
                   **python_pipeline(work, seed)}
            rows.append(row)
            print(line(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    print()
    print(table(rows))


COLUMNS = ["psa_default", "psa_run_lambda", "psa_random", "psa_true_pairs", "python_ot"]


def line(row):
    r = " ".join(f"{c}={row[c]:.3f}" for c in COLUMNS)
    return (f"{row['set']:<18} seed {row['seed']}: trace×random {row['trace_x_random']:.2f} "
            f"chosen {row['psa_chosen']:<7} {r}")


def table(rows):
    head = "| set | trace × random | " + " | ".join(COLUMNS) + " | chosen |"
    out = [head, "|" + " --- |" * (len(COLUMNS) + 3)]
    for name in dict.fromkeys(r["set"] for r in rows):
        rs = [r for r in rows if r["set"] == name]
        cell = lambda c: f"{np.mean([r[c] for r in rs]):.3f} ± {np.std([r[c] for r in rs]):.3f}"  # noqa: E731
        chosen = ", ".join(r["psa_chosen"] for r in rs)
        out.append(f"| {name} | {np.mean([r['trace_x_random'] for r in rs]):.2f} | "
                   + " | ".join(cell(c) for c in COLUMNS) + f" | {chosen} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
