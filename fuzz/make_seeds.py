"""Writes small seeds for the .h5ad fuzz target into corpus/h5ad/ (run from fuzz/ with h5py).

Each seed holds one layout psa reads, with only the groups that layout needs, so that inputs stay
near 9 KB (anndata's own files are 38 KB, mostly empty groups, and fuzz four times slower). HDF5's
earliest format is used, as h5py and anndata write it: its metadata carries no checksums, so
mutations reach the reader instead of failing a checksum.
"""

import os

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "h5ad")
TEXT = h5py.string_dtype()


def encode(obj, kind, version):
    obj.attrs["encoding-type"] = kind
    obj.attrs["encoding-version"] = version


def frame(f, index, columns):
    obs = f.create_group("obs")
    encode(obs, "dataframe", "0.2.0")
    obs.attrs["_index"] = "_index"
    obs.attrs["column-order"] = np.array(columns, dtype=TEXT)
    obs.create_dataset("_index", data=np.array(index, dtype=TEXT))
    return obs


def compressed(f, key, kind, shape, data, indices, indptr, legacy=False):
    group = f.create_group(key)
    if legacy:
        group.attrs["h5sparse_format"] = kind[:3]
        group.attrs["h5sparse_shape"] = np.array(shape, dtype=np.int64)
    else:
        encode(group, kind, "0.1.0")
        group.attrs["shape"] = np.array(shape, dtype=np.int64)
    group["data"] = np.array(data, dtype=np.float32)
    group["indices"] = np.array(indices, dtype=np.int32)
    group["indptr"] = np.array(indptr, dtype=np.int64)


def seed(name, write):
    with h5py.File(os.path.join(OUT, name), "w") as f:
        write(f)


def dense(f):
    f.create_dataset("X", data=np.arange(12, dtype=np.float32).reshape(4, 3), chunks=(2, 3), compression="gzip")
    f.create_group("layers")["counts"] = np.arange(12, dtype=np.int32).reshape(4, 3)
    f.create_group("obsm")["X_pca"] = np.ones((4, 2))
    frame(f, ["a", "b", "c", "d"], [])


def sparse(f):
    compressed(f, "X", "csr_matrix", (3, 3), [1, 2, 3], [0, 2, 1], [0, 2, 2, 3])
    compressed(f.create_group("layers"), "csc", "csc_matrix", (3, 3), [1, 3, 2], [0, 2, 0], [0, 1, 2, 3])
    frame(f, ["a", "b", "c"], [])


def columns(f):
    f["X"] = np.zeros((3, 1))
    obs = frame(f, ["a", "b", "c"], ["cell_type", "donor", "n_genes", "is_doublet", "batch"])
    cat = obs.create_group("cell_type")
    encode(cat, "categorical", "0.2.0")
    cat.attrs["ordered"] = False
    cat["categories"] = np.array(["B", "T"], dtype=TEXT)
    cat["codes"] = np.array([1, 0, -1], dtype=np.int8)
    for name, kind, values in [
        ("donor", "nullable-string-array", np.array(["d1", "d2", "d3"], dtype=TEXT)),
        ("n_genes", "nullable-integer", np.array([10, 20, 30])),
    ]:
        group = obs.create_group(name)
        encode(group, kind, "0.1.0")
        group["values"] = values
        group["mask"] = np.array([False, False, True])
    obs["is_doublet"] = np.array([True, False, True])
    obs["batch"] = np.array([1, 2, 3], dtype=np.uint16)


def v07(f):
    f["X"] = np.zeros((2, 1), dtype=np.float32)
    obs = frame(f, ["a", "b"], ["cell_type"])
    categories = obs.create_dataset("__categories/cell_type", data=np.array(["B", "T"], dtype=TEXT))
    obs["cell_type"] = np.array([1, 0], dtype=np.int8)
    obs["cell_type"].attrs["categories"] = categories.ref


def legacy(f):
    f.create_dataset("X", data=np.eye(3, dtype=np.float32), chunks=(2, 3), compression="gzip")
    rows = [(b"AAAC-1", 1, 10, 0.5, True), (b"AAAG-1", 0, 20, 1.5, False), (b"AATT-1", 2, 30, 2.5, True)]
    dtype = [("index", "S8"), ("louvain", "i1"), ("n_genes", ">i8"), ("mito", "<f4"), ("doublet", "?")]
    f.create_dataset("obs", data=np.array(rows, dtype=dtype), chunks=(2,), compression="gzip")
    obsm = np.zeros(3, dtype=[("X_pca", "<f4", (2,)), ("X_umap", ">f8", (2,))])
    f["obsm"] = obsm
    f["uns/louvain_categories"] = np.array([b"0", b"1"])


def legacy_sparse(f):
    compressed(f, "X", "csr_matrix", (2, 2), [1, 2], [0, 1], [0, 1, 2], legacy=True)
    f["obs"] = np.array([(b"a",), (b"b",)], dtype=[("index", "S1")])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, write in [
        ("seed_dense.h5ad", dense),
        ("seed_sparse.h5ad", sparse),
        ("seed_columns.h5ad", columns),
        ("seed_v07.h5ad", v07),
        ("seed_legacy.h5ad", legacy),
        ("seed_legacy_sparse.h5ad", legacy_sparse),
    ]:
        seed(name, write)
