#!/usr/bin/env python
"""The paper's application, every experiment in one command: the sparse supervised autoencoder
(sae.py: feature selection on two synthetic sets and a real one, five projections and magnitude
pruning) and the tri-level case (cnn.py: a CNN's first convolution, tri-level against bi-level).

    python examples/sae/run.py            # the full experiments (about 35 minutes on 2 cores),
                                          # tables and plots written to docs/sae/
    python examples/sae/run.py --fast     # a smoke run on tiny data (seconds), into a temp dir

Options: --out DIR (default docs/sae), --jobs N (processes for sae.py's folds; default: the
number of CPUs, at most 4). Each script has more options of its own (--help).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and multiprocessing find the module there
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast", action="store_true", help="tiny data, seconds")
    p.add_argument("--out", help="output directory (default docs/sae, a temp dir with --fast)")
    p.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 4))
    a = p.parse_args(argv)
    out = a.out or (tempfile.mkdtemp(prefix="sae-") if a.fast else os.path.join("docs", "sae"))
    common = ["--out", out] + (["--fast"] if a.fast else [])
    _load("sae").main(common + ["--jobs", str(1 if a.fast else a.jobs)])
    _load("cnn").main(common)
    print(f"all results in {out}/: results.md, accuracy_vs_sparsity.png, cnn.md, "
          "cnn_accuracy_vs_sparsity.png")


if __name__ == "__main__":
    main()
