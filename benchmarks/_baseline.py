"""``--baseline REF``: an earlier commit's ``jaxrnn`` importable next to the current one, for a same-run A/B.

``git archive REF jaxrnn`` is unpacked into a temporary directory and the folder renamed
``jaxrnn_baseline``; that directory goes on ``sys.path``. The package imports itself with relative
imports only (checked: an absolute ``from jaxrnn... import`` or ``import jaxrnn`` in its code is
rewritten to ``jaxrnn_baseline``, any other absolute import stops the run, and importing it must not
pull in the current ``jaxrnn``), so
both versions live in one process and their contenders alternate in the same rounds. Both run
on this environment's jax / flax / optax: the A/B compares jaxrnn's code, nothing else.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

PACKAGE = "jaxrnn_baseline"
ROOT = Path(__file__).resolve().parent.parent

# import statements of the package by its absolute name (doctest lines start with >>> and do not match)
_FROM = re.compile(r"^(\s*)from\s+jaxrnn(?=[\s.])", re.M)  # from jaxrnn[.x] import y
_IMPORT = re.compile(r"^(\s*)import\s+jaxrnn\s*$", re.M)  # import jaxrnn
# import jaxrnn.x, import a, jaxrnn: not rewritten (the run stops and names the line)
_OTHER = re.compile(rf"^\s*import\s+(?!{PACKAGE} as jaxrnn\s*$).*\bjaxrnn\b", re.M)


def _rewrite(text: str) -> str:
    text = _FROM.sub(lambda m: f"{m[1]}from {PACKAGE}", text)
    return _IMPORT.sub(lambda m: f"{m[1]}import {PACKAGE} as jaxrnn", text)


@dataclasses.dataclass(frozen=True)
class Baseline:
    ref: str  # as given on the command line
    commit: str  # what it resolved to
    module: ModuleType  # the baseline's top-level package, jaxrnn_baseline
    rewritten: tuple[str, ...]  # files whose absolute imports were rewritten


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


def current_version() -> str:
    """The commit the working tree is at, and whether its jaxrnn/ differs from it (the current side of an A/B)."""
    head = _git("rev-parse", "--short", "HEAD").stdout.decode().strip() or "unknown commit"
    dirty = _git("status", "--porcelain", "--", "jaxrnn").stdout.decode().strip()
    return f"working tree at {head}" + (" (jaxrnn/ modified)" if dirty else "")


def load(ref: str) -> Baseline:
    """Extract ``ref``'s jaxrnn/ and import it as ``jaxrnn_baseline``. Raises SystemExit with the reason."""
    rev = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if rev.returncode != 0:
        raise SystemExit(f"--baseline: {ref!r} is not a commit of {ROOT}")
    commit = rev.stdout.decode().strip()
    archive = _git("archive", "--format=tar", commit, "jaxrnn")
    if archive.returncode != 0:
        raise SystemExit(f"--baseline: git archive {ref} jaxrnn failed: {archive.stderr.decode().strip()}")
    if PACKAGE in sys.modules:
        raise SystemExit(f"--baseline: {PACKAGE} is imported already (one baseline per process)")
    tmp = Path(tempfile.mkdtemp(prefix="jaxrnn-baseline-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp, filter="data")
        else:  # Python < 3.10.12: git's own archive of this repository
            tar.extractall(tmp)
    package = tmp / PACKAGE
    (tmp / "jaxrnn").rename(package)
    rewritten = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        new = _rewrite(text)
        left = _OTHER.search(new)
        if left:
            raise SystemExit(f"--baseline: {ref}'s {path.relative_to(tmp)} has {left[0].strip()!r}; not rewritten")
        if new != text:
            path.write_text(new)
            rewritten.append(str(path.relative_to(tmp)))
    before = set(sys.modules)
    sys.path.insert(0, str(tmp))
    module = importlib.import_module(PACKAGE)
    leaked = sorted(n for n in set(sys.modules) - before if n == "jaxrnn" or n.startswith("jaxrnn."))
    if leaked:
        raise SystemExit(f"--baseline: importing {ref}'s jaxrnn as {PACKAGE} imported the current one: {leaked}")
    if not Path(module.__file__).resolve().is_relative_to(tmp.resolve()):
        raise SystemExit(f"--baseline: {PACKAGE} came from {module.__file__}, not from {tmp}")
    return Baseline(ref, commit, module, tuple(rewritten))
