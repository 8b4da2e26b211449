"""The Python examples of the READMEs run as written (from the repository's root, where
`examples/weights.npy` is), so they cannot rot."""

from __future__ import annotations

import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def blocks(path: pathlib.Path):
    text = path.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


CASES = [
    (name, i, code)
    for name in ("README.md", "python/README.md")
    for i, code in enumerate(blocks(ROOT / name))
]


@pytest.mark.parametrize("name,index,code", CASES, ids=[f"{n}#{i}" for n, i, _ in CASES])
def test_readme_example_runs(name, index, code, monkeypatch):
    if "torch" in code:
        pytest.importorskip("torch")
    monkeypatch.chdir(ROOT)
    exec(compile(code, f"{name} example {index}", "exec"), {})
