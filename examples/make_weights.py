#!/usr/bin/env python3
"""Writes examples/weights.npy: the first-layer weights of a small network, 512 input
features x 64 hidden units, float32, C order. 24 features carry signal (large weights); the
other 488 are noise. The bi-level l1,inf projection should keep mostly the informative rows.

Pure standard library (no NumPy needed), deterministic (fixed seed)."""
import random
import struct
import sys

ROWS, COLS, INFORMATIVE = 512, 64, 24
rng = random.Random(20260525)
informative = set(rng.sample(range(ROWS), INFORMATIVE))
values = []
for i in range(ROWS):
    scale = 1.0 if i in informative else 0.08
    values.extend(rng.gauss(0.0, scale) for _ in range(COLS))

header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (ROWS, COLS)
# magic + version 1.0 + header length; the whole preamble is padded to a multiple of 64 bytes
pad = 64 - (10 + len(header) + 1) % 64
header = header + " " * pad + "\n"
out = sys.argv[1] if len(sys.argv) > 1 else "examples/weights.npy"
with open(out, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
    f.write(struct.pack("<%df" % len(values), *values))
print("wrote", out, "informative rows:", sorted(informative))
