"""Writes the seed inputs of the fuzz targets (fuzz/corpus/<target>/seed-*): files as NumPy,
pandas and editors write them. Run from the repository root: python fuzz/seeds/make_seeds.py.
The committed corpus is these seeds plus what `cargo fuzz` found, minimised (fuzz/README.md)."""
import io
import pathlib

import numpy as np

root = pathlib.Path("fuzz/corpus")


def put(target, name, data):
    d = root / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def npy(array, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array, allow_pickle=True)
    else:
        np.lib.format.write_array(buf, array, version=version, allow_pickle=True)
    return buf.getvalue()


m = np.array([[1.0, -2.5, 3.0], [4.0, 5.0, 6.25]])
for name, array, version in [
    ("f8", m, None),
    ("f4", m.astype(np.float32), None),
    ("f8-fortran", np.asfortranarray(m), None),
    ("f8-big", m.astype(">f8"), None),
    ("f8-v2", m, (2, 0)),
    ("f8-v3", m, (3, 0)),
    ("f8-nan", np.array([[1.0, np.nan]]), None),
    ("f8-1d", np.array([1.0, 2.0]), None),
    ("f8-3d", np.zeros((2, 1, 2)), None),
    ("f8-empty", np.zeros((0, 3)), None),
    ("f8-scalar", np.array(1.5), None),
    ("i8", np.array([3, -1, 10**12], dtype=np.int64), None),
    ("i2-column", np.array([[1], [2]], dtype=np.int16), None),
    ("u1", np.array([7, 255], dtype=np.uint8), None),
    ("u8-big", np.array([1, 2], dtype=">u8"), None),
    ("unicode", np.array(["B cell", "NK", "Mono"]), None),
    ("unicode-big", np.array(["ab", "c"]).astype(">U2"), None),
    ("bytes", np.array([b"ab", b"", b"xyz"]), None),
    ("bool", np.array([True, False]), None),
    ("complex", np.array([1 + 2j]), None),
    ("object", np.array(["a", 1], dtype=object), None),
    ("record", np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]), None),
]:
    put("npy", name, npy(array, version))
put("npy", "truncated", npy(m)[:-5])
put("npy", "header-only", npy(m)[:64])

# text_matrix: the first byte picks .csv (0), .tsv (1) or .txt (2).
for name, choice, text in [
    ("csv", 0, "1,-2.5,3\n4,5,6.25\n"),
    ("csv-header", 0, "a,b,c\n1, -2.5, 3\r\n4,5,6.25\n\n"),
    ("csv-quoted", 0, '"a","b ""x"""\n"1","2"\n"3",4\n'),
    ("csv-multiline", 0, '"a\nb",c\n1,2\n'),
    ("csv-unclosed", 0, 'a,"b\n1,2\n'),
    ("csv-bom", 0, "\ufeffx,y\n1,2\n"),
    ("csv-ragged", 0, "a,b,c\n1,2,3\n4,5\n"),
    ("csv-nan", 0, "1,NaN\ninf,-Infinity\n"),
    ("csv-exp", 0, "1e308,-1e-320\n0x10,1_000\n"),
    ("csv-blank", 0, "\n\n"),
    ("tsv", 1, "x\ty\tz\n1\t-2.5\t3\n4\t5\t6.25\n"),
    ("tsv-empty-fields", 1, "1\t\t3\n"),
    ("txt-savetxt", 2, "# a b c\n1.0e+00 -2.5e+00 3.0e+00\n4   5 6.25\n"),
    ("txt-comma", 2, "1,-2.5,3\n4,5,6.25\n"),
    ("txt-tab", 2, "# c\n\n1\t2\n3\t4\n"),
    ("txt-bad-utf8", 2, None),
]:
    data = text.encode() if text is not None else b"1 2\n\xff\xfe 3\n"
    put("text_matrix", name, bytes([choice]) + data)

# labels: bits 0-1 of the first byte pick .csv/.tsv/.txt, bit 2 ids, bit 3 a named column.
for name, choice, text in [
    ("txt", 2, "B cell\nCD4 T\nB cell\n\n"),
    ("csv-header", 0, 'Label\nNK\n"Mono, CD14"\n'),
    ("csv-two-columns", 0, "t,batch\nNK,1\nB,2\n"),
    ("csv-named", 8, "cell_type,id\nNK,c1\nB,c2\n"),
    ("csv-ids-named", 12, "id,cell_type\nc1,NK\nc2,B\n"),
    ("tsv-ids", 5, "ids\nu1\nu2\n"),
    ("tsv-named", 9, "t\tx\nA\t1\nB\t2\n"),
    ("blank-line", 2, "labels\nNK\n\nB\n"),
    ("empty-field", 0, "NK,1\n,2\n"),
    ("header-only", 0, "label\n"),
    ("ragged", 0, "a,b\n1\n"),
    ("crlf", 1, "label\r\nA\r\nB\r\n"),
    ("quoted-newline", 0, '"a\nb"\nc\n'),
    ("unclosed", 0, '"a\nb\n'),
    ("bom", 2, "\ufefflabel\nA\n"),
    ("long", 2, "x" * 300 + "\ny\n"),
    ("unicode", 2, "Zelle \u00e9\u00e8\n\u7d30\u80de\n"),
    ("bad-utf8", 2, None),
    ("named-missing", 8, "t,x\n"),
    ("nul", 2, "a\x00b\nc\n"),
]:
    data = text.encode() if text is not None else b"A\n\xc3\x28\n"
    put("labels", name, bytes([choice]) + data)
