"""Python's anndata on the other side of psa's .h5ad reader and writer (crates/io/tests/anndata.rs).

    python anndata_check.py dump OUTDIR FILE.h5ad...
        Reads each FILE with anndata.read_h5ad and writes what it read, in the forms psa returns,
        to OUTDIR/STEM (STEM: FILE's name without .h5ad): X.npy, layers/NAME.npy, obsm/NAME.npy
        (dense float64; sparse made dense), and obs.json: {"obs_names": [...], "columns": {NAME: {"values": [...]} |
        {"missing_row": ROW} | {"refused": "floats"}}}, each value as psa gives labels (str() of a
        category, an integer or a bool; a string as it is).

    python anndata_check.py matches FILE.h5ad EXPECTED.json
        Reads psa's matches.h5ad with anndata (and scanpy, when installed) and checks names,
        dtypes and values against EXPECTED.json; exits non-zero with the first difference.
"""

import json
import os
import sys
import warnings

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp


def dense(matrix):
    if sp.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


def column(series):
    if isinstance(series.dtype, pd.CategoricalDtype):
        if series.isna().any():
            return {"missing_row": int(np.flatnonzero(series.isna().to_numpy())[0])}
        return {"values": [str(value) for value in series]}
    if series.isna().any():
        return {"missing_row": int(np.flatnonzero(series.isna().to_numpy())[0])}
    if pd.api.types.is_float_dtype(series.dtype):
        return {"refused": "floats"}
    return {"values": [str(value) for value in series]}


def dump(path, out):
    adata = anndata.read_h5ad(path)
    os.makedirs(os.path.join(out, "layers"), exist_ok=True)
    os.makedirs(os.path.join(out, "obsm"), exist_ok=True)
    if adata.X is not None:
        np.save(os.path.join(out, "X.npy"), dense(adata.X))
    for name, layer in adata.layers.items():
        np.save(os.path.join(out, "layers", name + ".npy"), dense(layer))
    for name, embedding in adata.obsm.items():
        if isinstance(embedding, pd.DataFrame):
            continue  # psa refuses data frames in obsm
        np.save(os.path.join(out, "obsm", name + ".npy"), dense(embedding))
    obs = {
        "obs_names": [str(name) for name in adata.obs_names],
        "columns": {name: column(adata.obs[name]) for name in adata.obs.columns},
    }
    with open(os.path.join(out, "obs.json"), "w") as f:
        json.dump(obs, f)


def check_equal(what, found, expected):
    if found != expected:
        sys.exit(f"{what}: anndata read {found!r}, expected {expected!r}")


def check_matches(path, expected_path):
    with open(expected_path) as f:
        expected = json.load(f)
    m = anndata.read_h5ad(path)
    check_equal("shape", m.shape, (len(expected["obs_names"]), 0))
    check_equal("X", m.X, None)
    check_equal("obs_names", list(m.obs_names), expected["obs_names"])
    check_equal("obs columns", list(m.obs.columns), ["psa_label", "psa_partner", "psa_partner_weight"])
    label = m.obs["psa_label"]
    check_equal("psa_label dtype", str(label.dtype), "category")
    check_equal("psa_label", [str(v) for v in label], expected["labels"])
    check_equal("psa_label categories", list(label.cat.categories), sorted(set(expected["labels"])))
    partner = m.obs["psa_partner"]
    check_equal("psa_partner dtype kind", partner.dtype.kind in "OUT" or str(partner.dtype) == "string", True)
    check_equal("psa_partner", list(partner), expected["partners"])
    weight = m.obs["psa_partner_weight"]
    check_equal("psa_partner_weight dtype", str(weight.dtype), "float32")
    check_equal("psa_partner_weight", weight.tolist(), expected["partner_weights"])
    index = m.obsm["psa_topk_index"]
    check_equal("psa_topk_index dtype", str(index.dtype), "int64")
    check_equal("psa_topk_index", index.tolist(), expected["topk_index"])
    topk = m.obsm["psa_topk_weight"]
    check_equal("psa_topk_weight dtype", str(topk.dtype), "float32")
    check_equal("psa_topk_weight", topk.tolist(), expected["topk_weight"])
    if expected.get("projection") is None:
        check_equal("obsm keys", sorted(m.obsm.keys()), ["psa_topk_index", "psa_topk_weight"])
    else:
        projection = m.obsm["psa_projection"]
        check_equal("psa_projection dtype", str(projection.dtype), "float64")
        check_equal("psa_projection", projection.tolist(), expected["projection"])
    psa = json.loads(m.uns["psa"])
    check_equal("uns['psa'] options", psa["options"], expected["options"])
    check_equal("uns['psa'] version", psa["psa_version"], expected["psa_version"])
    check_attach(m, expected)
    check_scanpy(path, expected)


def check_predictions(path, expected_path):
    """`psa apply`'s .h5ad: obs_names, obsm["psa_prediction"] (float64), uns["psa"], no X."""
    with open(expected_path) as f:
        expected = json.load(f)
    m = anndata.read_h5ad(path)
    check_equal("shape", m.shape, (len(expected["obs_names"]), 0))
    check_equal("X", m.X, None)
    check_equal("obs_names", list(m.obs_names), expected["obs_names"])
    check_equal("obsm keys", sorted(m.obsm.keys()), ["psa_prediction"])
    prediction = m.obsm["psa_prediction"]
    check_equal("psa_prediction dtype", str(prediction.dtype), "float64")
    check_equal("psa_prediction", prediction.tolist(), expected["prediction"])
    psa = json.loads(m.uns["psa"])
    check_equal("uns['psa'] options", psa["options"], expected["options"])
    names = expected["obs_names"][::-1]
    adata = anndata.AnnData(obs=pd.DataFrame(index=names))
    adata.obsm["psa_prediction"] = m[adata.obs_names].obsm["psa_prediction"]
    check_equal("attached prediction", adata.obsm["psa_prediction"].tolist(), expected["prediction"][::-1])


def check_attach(m, expected):
    """The README's one line, on a user's AnnData whose rows are in another order."""
    names = expected["obs_names"][::-1]
    adata = anndata.AnnData(obs=pd.DataFrame(index=names))
    if expected.get("projection") is not None:
        adata.obsm["psa"] = m[adata.obs_names].obsm["psa_projection"]
        check_equal("attached projection", adata.obsm["psa"].tolist(), expected["projection"][::-1])
    adata.obs["psa_partner"] = m[adata.obs_names].obs["psa_partner"].to_numpy()
    check_equal("attached partners", list(adata.obs["psa_partner"]), expected["partners"][::-1])


def check_scanpy(path, expected):
    try:
        import scanpy
    except ImportError:
        print("note: scanpy is not installed; matches.h5ad was checked with anndata only", file=sys.stderr)
        return
    m = scanpy.read_h5ad(path)
    check_equal("scanpy obs_names", list(m.obs_names), expected["obs_names"])
    check_equal("scanpy psa_label", [str(v) for v in m.obs["psa_label"]], expected["labels"])


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    command, *args = sys.argv[1:]
    if command == "dump":
        out, *files = args
        for path in files:
            stem = os.path.splitext(os.path.basename(path))[0]
            dump(path, os.path.join(out, stem))
    elif command == "matches":
        check_matches(*args)
    elif command == "predictions":
        check_predictions(*args)
    else:
        sys.exit(f"unknown command {command!r}")
