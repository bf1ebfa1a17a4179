"""The README's Python examples run as written, in order, and say what they print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run_and_print_their_comments():
    blocks = _python_blocks()
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
