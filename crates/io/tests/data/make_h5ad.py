"""Writes the .h5ad fixtures of crates/io/tests/h5ad.rs (checked in; those tests do not need Python)
and, for crates/io/tests/anndata.rs, fresh copies and larger files with the anndata installed.

    python make_h5ad.py [DIR] [--large]

DIR defaults to this directory. The checked-in files were made with the versions pinned in
requirements.txt (anndata 0.12.19, h5py 3.16.0, numpy 2.4.6, scipy 1.17.1, pandas 2.3.3):

    python3 -m venv /tmp/h5ad-venv && /tmp/h5ad-venv/bin/pip install -r requirements.txt
    /tmp/h5ad-venv/bin/python make_h5ad.py

The small values are exactly representable in float32, so the Rust test states them and compares
for equality. Keep the two in step. `--large` adds files big enough to be read in several row
windows (large_dense.h5ad: chunked and gzip-compressed; large_csr.h5ad, large_csc.h5ad: 600 000
stored entries); they are never checked in.

Layouts: dense.h5ad and sparse.h5ad are what anndata writes today; v07.h5ad is the layout of
anndata 0.7 (categorical codes with a `categories` reference into obs/__categories);
legacy.h5ad is the layout of anndata < 0.7, as in scanpy's bundled pbmc68k_reduced.h5ad (X dense,
chunked, gzip; obs, var and obsm compound datasets; categories in uns/<column>_categories; raw.X
sparse with h5sparse attributes), and legacy_sparse.h5ad its sparse-X form. Those three are
written by hand with h5py, since no current anndata writes them; anndata still reads them, and
crates/io/tests/anndata.rs checks that psa reads what anndata reads.
"""

import os
import sys

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

OBS_NAMES = ["cell_a", "cell_b", "cell_c", "cell_d"]
X = np.array(
    [[1.0, 0.0, 2.5], [0.0, 0.0, 0.0], [-3.0, 4.25, 0.0], [0.0, 0.5, 6.0]], dtype=np.float32
)
COUNTS = np.array([[1, 0, 2], [0, 0, 0], [3, 4, 0], [0, 5, 6]], dtype=np.int32)
X_PCA = np.array([[0.5, -1.0], [1.5, 2.0], [-0.25, 0.0], [3.0, -4.5]], dtype=np.float64)
X_UMAP = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], dtype=np.float64)


def obs_frame():
    return pd.DataFrame(
        {
            # Repeated strings: anndata stores them as a categorical.
            "cell_type": pd.Categorical(["T", "B", "T", "NK"]),
            # Unique strings stay a string array (UTF-8, variable length).
            "barcode": ["AAAC", "AAAG", "Müller-1", "TTTT"],
            "batch": np.array([1, 2, 1, 20], dtype=np.int64),
            "cluster": pd.Categorical([0, 1, 0, 2]),
            "is_doublet": [False, True, False, False],
            "score": [0.5, 1.0, 1.5, 2.0],
            # A pandas string column: stored as anndata's nullable-string-array.
            "donor": pd.array(["d1", "d2", "d3", "d4"], dtype="string"),
            # A pandas nullable integer column: anndata's nullable-integer (values and mask).
            "n_genes": pd.array([10, 20, 30, 40], dtype="Int64"),
        },
        index=pd.Index(OBS_NAMES, name="cell"),
    )


def write_dense(path):
    adata = AnnData(X=X, obs=obs_frame())
    adata.var_names = ["g1", "g2", "g3"]
    adata.layers["counts"] = COUNTS
    adata.layers["spliced"] = sp.csr_matrix(X.astype(np.float64))
    adata.obsm["X_pca"] = X_PCA
    adata.obsm["meta"] = pd.DataFrame({"a": [1, 2, 3, 4]}, index=adata.obs_names)
    adata.write_h5ad(path)


def write_sparse(path):
    adata = AnnData(X=sp.csr_matrix(X))
    adata.layers["csc"] = sp.csc_matrix(X)
    # A missing category: pandas NaN becomes code -1.
    adata.obs["cell_type"] = pd.Categorical(["T", None, "B", "T"])
    adata.obs["n_genes"] = pd.array([10, None, 30, 40], dtype="Int64")
    adata.write_h5ad(path)


def strings(values):
    return np.array(values, dtype=h5py.string_dtype())


def write_v07(path):
    """The layout of anndata 0.7: a categorical column is its codes, with an attribute
    `categories` referring to obs/__categories/<column>."""
    csr = sp.csr_matrix(X)
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        x = f.create_group("X")
        x.attrs["encoding-type"] = "csr_matrix"
        x.attrs["encoding-version"] = "0.1.0"
        x.attrs["shape"] = np.array(csr.shape, dtype=np.int64)
        x["data"], x["indices"], x["indptr"] = csr.data, csr.indices, csr.indptr
        obs = f.create_group("obs")
        obs.attrs["encoding-type"] = "dataframe"
        obs.attrs["encoding-version"] = "0.1.0"
        obs.attrs["_index"] = "_index"
        obs.attrs["column-order"] = np.array(["cell_type", "batch"], dtype=h5py.string_dtype())
        obs["_index"] = strings(OBS_NAMES)
        categories = obs.create_dataset("__categories/cell_type", data=strings(["B", "NK", "T"]))
        obs["cell_type"] = np.array([2, 0, 2, 1], dtype=np.int8)
        obs["cell_type"].attrs["categories"] = categories.ref
        obs["batch"] = np.array([1, 2, 1, 20], dtype=np.int64)
        var = f.create_group("var")
        var.attrs["encoding-type"] = "dataframe"
        var.attrs["encoding-version"] = "0.1.0"
        var.attrs["_index"] = "_index"
        var.attrs["column-order"] = np.array([], dtype=np.float64)
        var["_index"] = strings(["g1", "g2", "g3"])


def legacy_obs():
    """obs as pre-0.7 anndata stored it: one record per row, the first field the index."""
    fields = [
        ("index", "S16"),
        ("cell_type", "i1"),  # codes into uns/cell_type_categories
        ("n_genes", "<i8"),
        ("percent_mito", "<f4"),
        ("phase", "i1"),  # codes into uns/phase_categories
        ("leiden", "i1"),  # a code past its 2 categories: anndata keeps the integers
        ("is_doublet", "?"),
    ]
    rows = [
        (b"AAAGCCTGGCTAAC-1", 2, 1003, 0.0238, 0, 0, False),
        (b"AAATTCGATGCACA-1", 0, 1080, 0.0274, 2, 1, True),
        (b"AACACGTGGTCTTT-1", 2, 1228, 0.0168, 0, 2, False),
        (b"AAGTGCACGTGCTA-1", 1, 1007, 0.0201, 1, 0, False),
    ]
    return np.array(rows, dtype=fields)


def write_legacy(path, sparse_x):
    """The layout of anndata < 0.7, as in scanpy's bundled pbmc68k_reduced.h5ad."""
    with h5py.File(path, "w") as f:
        if sparse_x:
            csr = sp.csr_matrix(X)
            x = f.create_group("X")
            x.attrs["h5sparse_format"] = "csr"
            x.attrs["h5sparse_shape"] = np.array(csr.shape, dtype=np.int64)
            x["data"], x["indices"], x["indptr"] = csr.data, csr.indices, csr.indptr
            names = [(name.encode(),) for name in OBS_NAMES]
            f["obs"] = np.array(names, dtype=[("index", "S6")])
            return
        f.create_dataset("X", data=X, chunks=(2, 3), compression="gzip")
        f.create_dataset("obs", data=legacy_obs(), chunks=(2,), compression="gzip")
        obsm = np.zeros(4, dtype=[("X_pca", "<f4", (2,)), ("X_umap", "<f8", (2,))])
        obsm["X_pca"], obsm["X_umap"] = X_PCA, X_UMAP
        f.create_dataset("obsm", data=obsm, chunks=(2,), compression="gzip")
        var = np.array([(b"g1", 1.0), (b"g2", 2.0), (b"g3", 3.0)], dtype=[("index", "S2"), ("means", "<f4")])
        f.create_dataset("var", data=var)
        f["uns/cell_type_categories"] = np.array([b"B", b"NK", b"T"])
        f["uns/phase_categories"] = np.array([b"G1", b"G2M", b"S"])
        f["uns/leiden_categories"] = np.array([b"0", b"1"])
        csr = sp.csr_matrix(X)
        raw = f.create_group("raw.X")
        raw.attrs["h5sparse_format"] = "csr"
        raw.attrs["h5sparse_shape"] = np.array(csr.shape, dtype=np.int64)
        raw["data"], raw["indices"], raw["indptr"] = csr.data, csr.indices, csr.indptr


def write_large(directory):
    """Files read in several row windows: 40 000 × 64 float32 dense, chunked and gzip-compressed
    (10 MB stored); 40 000 × 100 CSR and CSC with 600 000 entries."""
    rng = np.random.default_rng(7)
    n = 40_000
    obs = pd.DataFrame(
        {"group": pd.Categorical(rng.choice(["a", "b", "c"], n))},
        index=[f"cell{i}" for i in range(n)],
    )
    dense = AnnData(X=rng.standard_normal((n, 64)).astype(np.float32), obs=obs)
    dense.obsm["X_pca"] = rng.standard_normal((n, 10))
    dense.write_h5ad(os.path.join(directory, "large_dense.h5ad"), compression="gzip")
    matrix = sp.random(40_000, 100, density=0.15, format="csr", dtype=np.float32, random_state=7)
    AnnData(X=matrix).write_h5ad(os.path.join(directory, "large_csr.h5ad"))
    AnnData(X=matrix.tocsc()).write_h5ad(os.path.join(directory, "large_csc.h5ad"))


def check(directory):
    dense = anndata.read_h5ad(os.path.join(directory, "dense.h5ad"))
    assert (dense.X == X).all() and (dense.layers["counts"] == COUNTS).all()
    assert (dense.layers["spliced"].toarray() == X).all()
    assert (dense.obsm["X_pca"] == X_PCA).all()
    assert list(dense.obs_names) == OBS_NAMES
    sparse = anndata.read_h5ad(os.path.join(directory, "sparse.h5ad"))
    assert (sparse.X.toarray() == X).all() and (sparse.layers["csc"].toarray() == X).all()
    assert list(sparse.obs_names) == ["0", "1", "2", "3"]
    v07 = anndata.read_h5ad(os.path.join(directory, "v07.h5ad"))
    assert list(v07.obs["cell_type"]) == ["T", "B", "T", "NK"]
    legacy = anndata.read_h5ad(os.path.join(directory, "legacy.h5ad"))
    assert (legacy.X == X).all() and (legacy.obsm["X_pca"] == X_PCA).all()
    assert list(legacy.obs["cell_type"]) == ["T", "B", "T", "NK"]
    assert list(legacy.obs["leiden"]) == [0, 1, 2, 0]


def main(argv):
    large = "--large" in argv
    args = [arg for arg in argv if arg != "--large"]
    directory = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    anndata.settings.allow_write_nullable_strings = True
    write_dense(os.path.join(directory, "dense.h5ad"))
    write_sparse(os.path.join(directory, "sparse.h5ad"))
    write_v07(os.path.join(directory, "v07.h5ad"))
    write_legacy(os.path.join(directory, "legacy.h5ad"), sparse_x=False)
    write_legacy(os.path.join(directory, "legacy_sparse.h5ad"), sparse_x=True)
    if large:
        write_large(directory)
    check(directory)


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore", category=FutureWarning)
    main(sys.argv[1:])
