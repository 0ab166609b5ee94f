"""MNIST-style IDX files (gzipped or plain), shared by the reference benchmarks."""
import gzip
import os

import numpy as np


def read_idx(data_dir, name):
    """Read an IDX file (gzipped or plain) into a numpy array."""
    for fname in (name + ".gz", name):
        path = os.path.join(data_dir, fname)
        if os.path.exists(path):
            opener = gzip.open if fname.endswith(".gz") else open
            with opener(path, "rb") as f:
                raw = f.read()
            break
    else:
        raise FileNotFoundError(f"{name}(.gz) not found in {data_dir}")
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    assert magic >> 8 == 0x08, f"{name}: unsupported IDX magic {magic:#x} (expected ubyte)"
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
