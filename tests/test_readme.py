"""The Python examples of README.md and docs/porting.md: each block runs on its own, as a reader
who copies that one block runs it (a fresh namespace, nothing from the blocks above it), without
a warning, and each ``print(...)  # comment`` prints what its comment says."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/porting.md")


def _blocks(page: str) -> list[tuple[str, str]]:
    """``(heading, code)`` of every ```python block of ``page``, with the ``##`` heading above it."""
    text = (ROOT / page).read_text()
    found = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        prose = re.sub(r"^```.*?^```", "", text[: match.start()], flags=re.S | re.M)  # no comment is a heading
        headings = re.findall(r"^#+ (.+)$", prose, flags=re.M)
        found.append((headings[-1] if headings else "", match.group(1)))
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


EXAMPLES = [
    pytest.param(page, code, id=f"{Path(page).stem}-{i}-{_slug(heading)}")
    for page in PAGES
    for i, (heading, code) in enumerate(_blocks(page))
]


@pytest.mark.parametrize("page", PAGES)
def test_pages_have_python_examples(page):
    assert len(_blocks(page)) >= 3


def _run(code: str, filename: str) -> str:
    """Execute ``code`` as a fresh module (as ``python example.py`` would; Flax's dataclasses look
    their module up in ``sys.modules``) with every warning an error; returns what it printed."""
    module = types.ModuleType("__example__")
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("error")
        sys.modules[module.__name__] = module
        try:
            exec(compile(code, filename, "exec"), module.__dict__)
        finally:
            del sys.modules[module.__name__]
    return out.getvalue()


def _check_prints(code: str, printed: str) -> None:
    """Each top-level ``print(...)  # comment`` line printed one line that ends with its comment
    (torch's ``torch.Size([2, 3])`` read as ``(2, 3)``)."""
    prints = [ln for ln in code.splitlines() if ln.startswith("print(")]
    lines = printed.splitlines()
    assert len(lines) == len(prints), (prints, lines)
    for line, out in zip(prints, lines):
        expected = line.split("#")[-1].strip()
        assert out.replace("torch.Size([", "(").replace("])", ")").endswith(expected), (line, out)


@pytest.mark.parametrize("page, code", EXAMPLES)
def test_python_example_runs_alone_and_prints_its_comments(page, code):
    _check_prints(code, _run(code, str(ROOT / page)))


def test_the_checks_catch_a_wrong_comment_a_warning_and_a_missing_name():
    """The harness itself: a print that disagrees with its comment, a warning and a name defined
    only by another block all fail."""
    with pytest.raises(AssertionError):
        _check_prints("print(1 + 1)  # 3\n", _run("print(1 + 1)  # 3\n", "<example>"))
    with pytest.raises(UserWarning):
        _run("import warnings\nwarnings.warn('stale')\n", "<example>")
    _run("x = 1\n", "<example>")
    with pytest.raises(NameError):
        _run("print(x)  # 1\n", "<example>")
