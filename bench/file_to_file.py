#!/usr/bin/env python3
"""File to file: `multiproj project IN.npy -o OUT.npy` against NumPy's `np.load` → projection →
`np.save`, both as a user runs them: a fresh process per run, wall time, the input in the page
cache (both read it from a warm cache), the output written to a file that exists from the run
before (both replace it). The NumPy projection is `bench/numpy_ref.py`'s tuned implementation.

    bench/file_to_file.py [--multiproj target/release/multiproj] [--shape 8192x8192]
                          [--repeat 7] [--dir DIR] [--out bench/file_to_file.md]

Runs alternate (multiproj, multiproj --sync, NumPy, ...) so that a slow moment of this shared
machine hits all of them; medians are reported, and the ratio NumPy / multiproj of the medians.
Writes a Markdown record (`--out`) that `bench/report.py` copies into BENCHMARKS.md.
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import numpy_ref  # noqa: E402

SPEC = "l1 over dim0 of linf over dim1"

NUMPY_RUN = """
import sys, numpy as np
sys.path.insert(0, {here!r})
import numpy_ref
x = np.load({inp!r})
out = np.empty_like(x)
numpy_ref.l1inf_rows(x, {radius!r}, out)
np.save({outp!r}, out)
"""


def wall(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--multiproj", default="target/release/multiproj")
    p.add_argument("--shape", default="8192x8192")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--dir", default=None, help="where the files go (default: a temporary "
                   "directory under the repository's target/, on the same disk as a user's)")
    p.add_argument("--out", default=os.path.join(HERE, "file_to_file.md"))
    a = p.parse_args()
    shape = numpy_ref.parse_shape(a.shape)
    base = a.dir or tempfile.mkdtemp(prefix="f2f-", dir=os.path.join(HERE, "..", "target"))
    inp = os.path.join(base, "in.npy")
    x = numpy_ref.make_data(shape, np.float64, 0, 1)
    v, _ = numpy_ref.l1inf_rows(x, np.inf, np.empty_like(x))
    radius = 0.5 * float(v.sum())  # about half the rows survive
    np.save(inp, x)
    del x
    env = dict(os.environ, MULTIPROJ_KERNEL_CACHE=os.path.join(base, "kernels"))
    os.environ.update(env)
    mp_out, np_out = os.path.join(base, "mp.npy"), os.path.join(base, "np.npy")
    runs = {
        "multiproj": [a.multiproj, "project", SPEC, inp, "-r", repr(radius), "-o", mp_out],
        "multiproj --sync": [a.multiproj, "project", SPEC, inp, "-r", repr(radius), "-o",
                             mp_out, "--sync"],
        "numpy": [sys.executable, "-c",
                  NUMPY_RUN.format(here=HERE, inp=inp, radius=radius, outp=np_out)],
    }
    # Warm up: page cache, kernel cache, both outputs present.
    for cmd in runs.values():
        wall(cmd)
    a_mp, a_np = np.load(mp_out), np.load(np_out)
    diff = float(np.max(np.abs(a_mp - a_np)) / max(float(np.max(np.abs(a_np))), 1e-300))
    same = diff < 1e-9
    del a_mp, a_np
    times = {k: [] for k in runs}
    for _ in range(a.repeat):
        for k, cmd in runs.items():
            times[k].append(wall(cmd))
    med = {k: statistics.median(t) for k, t in times.items()}
    # NumPy's import alone, for reference: what a fresh python process costs before any work.
    py = statistics.median(wall([sys.executable, "-c", "import numpy"]) for _ in range(5))
    stats = subprocess.run(runs["multiproj"] + ["--json"], check=True, capture_output=True,
                           text=True, env=env).stdout
    gib = os.path.getsize(inp) / 2**30
    lines = [
        f"Recorded {datetime.date.today()} on {platform.node()} ({os.cpu_count()} cores), "
        f"`bench/file_to_file.py --shape {a.shape} --repeat {a.repeat}`: "
        f"`{SPEC}` on {a.shape} f64 ({gib:.2f} GiB), radius half the norm, wall time of a fresh "
        "process per run (medians; the runs alternate), input in the page cache, output "
        "replacing the previous run's. The results agree: "
        f"{'yes' if same else 'NO'} (largest difference {diff:.1e} of the largest entry).",
        "",
        "| run | median wall | min | max | NumPy / this |",
        "|---|---|---|---|---|",
    ]
    for k in runs:
        t = times[k]
        lines.append(f"| `{k}` | {med[k]:.0f} ms | {min(t):.0f} ms | {max(t):.0f} ms | "
                     f"{med['numpy'] / med[k]:.2f}× |")
    lines += [
        "",
        f"A python process that only imports NumPy takes {py:.0f} ms of the NumPy runs. "
        "`multiproj --json` of one run, stage by stage (ms): `" + stats.strip() + "`",
    ]
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
