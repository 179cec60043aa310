"""Writes the .h5ad fixtures of crates/io/tests/h5ad.rs (checked in; the tests do not need Python).

Run from this directory with anndata installed (they were made with anndata 0.12.19, h5py 3.16.0,
numpy 2.4.6, scipy 1.17.1, pandas 2.3.3):

    python3 -m venv /tmp/h5ad-venv && /tmp/h5ad-venv/bin/pip install anndata
    /tmp/h5ad-venv/bin/python make_h5ad.py

The values are small and exactly representable in float32, so the Rust test states them and
compares for equality. Keep the two in step.
"""

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


def write_dense():
    adata = AnnData(X=X, obs=obs_frame())
    adata.var_names = ["g1", "g2", "g3"]
    adata.layers["counts"] = COUNTS
    adata.layers["spliced"] = sp.csr_matrix(X.astype(np.float64))
    adata.obsm["X_pca"] = X_PCA
    adata.obsm["meta"] = pd.DataFrame({"a": [1, 2, 3, 4]}, index=adata.obs_names)
    adata.write_h5ad("dense.h5ad")


def write_sparse():
    adata = AnnData(X=sp.csr_matrix(X))
    adata.layers["csc"] = sp.csc_matrix(X)
    # A missing category: pandas NaN becomes code -1.
    adata.obs["cell_type"] = pd.Categorical(["T", None, "B", "T"])
    adata.obs["n_genes"] = pd.array([10, None, 30, 40], dtype="Int64")
    adata.write_h5ad("sparse.h5ad")


def write_legacy():
    """The layout of anndata < 0.7, by hand: h5sparse attributes on X, obs a compound dataset."""
    csr = sp.csr_matrix(X)
    with h5py.File("legacy.h5ad", "w") as f:
        x = f.create_group("X")
        x.attrs["h5sparse_format"] = "csr"
        x.attrs["h5sparse_shape"] = np.array(csr.shape, dtype=np.int64)
        x["data"] = csr.data
        x["indices"] = csr.indices
        x["indptr"] = csr.indptr
        names = [(name.encode(),) for name in OBS_NAMES]
        f["obs"] = np.array(names, dtype=[("index", "S6")])


def check():
    dense = anndata.read_h5ad("dense.h5ad")
    assert (dense.X == X).all() and (dense.layers["counts"] == COUNTS).all()
    assert (dense.layers["spliced"].toarray() == X).all()
    assert (dense.obsm["X_pca"] == X_PCA).all()
    assert list(dense.obs_names) == OBS_NAMES
    sparse = anndata.read_h5ad("sparse.h5ad")
    assert (sparse.X.toarray() == X).all() and (sparse.layers["csc"].toarray() == X).all()
    assert list(sparse.obs_names) == ["0", "1", "2", "3"]


if __name__ == "__main__":
    anndata.settings.allow_write_nullable_strings = True
    write_dense()
    write_sparse()
    write_legacy()
    check()
