"""The Python examples of README.md and docs/porting.md run as written, in order, and print what
their comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("page", ["README.md", "docs/porting.md"])
def test_python_examples_run_and_print_their_comments(page):
    README = ROOT / page
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), namespace)
        # each print's trailing comment is the shape it prints
        for line, printed in zip(
            [ln for ln in block.splitlines() if ln.startswith("print(")], out.getvalue().splitlines()
        ):
            expected = line.split("#")[-1].strip()
            assert printed.replace("torch.Size([", "(").replace("])", ")").endswith(expected), (line, printed)
