"""Times psa's .h5ad reader (hdf5-pure, row windows) against Python's anndata on the same files,
in one run, and reports psa's peak memory (ratios are what to compare: the machine is shared).

    cargo build --release -p psa-io --example h5ad_info
    python benches/h5ad_read.py [TARGET_DIR]   # TARGET_DIR: where cargo put the example

Files (seed 7): a 50 000 × 500 float32 dense X, chunked and gzip-compressed (as anndata writes it
with compression="gzip"), and the same shape as CSR with 10% of entries stored (2.5 million),
each with a 50-column obsm X_pca and a categorical obs column. psa makes every matrix dense
(float64), so anndata's time includes `.toarray()` of the sparse X.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

N, D = 50_000, 500


def write(directory):
    rng = np.random.default_rng(7)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(rng.choice(["B", "T", "NK", "mono"], N))},
        index=[f"cell{i}" for i in range(N)],
    )
    x_pca = rng.standard_normal((N, 50))
    dense = anndata.AnnData(X=rng.standard_normal((N, D)).astype(np.float32), obs=obs)
    dense.obsm["X_pca"] = x_pca
    dense.write_h5ad(os.path.join(directory, "dense.h5ad"), compression="gzip")
    matrix = sp.random(N, D, density=0.1, format="csr", dtype=np.float32, random_state=7)
    csr = anndata.AnnData(X=matrix, obs=obs)
    csr.obsm["X_pca"] = x_pca
    csr.write_h5ad(os.path.join(directory, "csr.h5ad"))


def time_anndata(path):
    started = time.perf_counter()
    adata = anndata.read_h5ad(path)
    x = adata.X.toarray() if sp.issparse(adata.X) else adata.X
    _ = (x.sum(), adata.obsm["X_pca"].sum(), list(adata.obs["cell_type"]))
    return time.perf_counter() - started


def time_psa(example, path):
    started = time.perf_counter()
    run = subprocess.run(
        ["/usr/bin/time", "-v", example, path], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    return seconds, rss / 1024


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CARGO_TARGET_DIR", "target")
    example = os.path.join(target, "release", "examples", "h5ad_info")
    with tempfile.TemporaryDirectory() as directory:
        write(directory)
        print("| file | size | psa s | anndata s | psa / anndata | psa peak RSS | X dense f64 |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name in ["dense.h5ad", "csr.h5ad"]:
            path = os.path.join(directory, name)
            size = os.path.getsize(path) / 1e6
            psa, rss = time_psa(example, path)
            python = time_anndata(path)
            dense_mb = N * D * 8 / 2**20
            print(
                f"| {name} | {size:.0f} MB | {psa:.2f} | {python:.2f} | {psa / python:.2f} "
                f"| {rss:.0f} MiB | {dense_mb:.0f} MiB |"
            )


if __name__ == "__main__":
    main()
