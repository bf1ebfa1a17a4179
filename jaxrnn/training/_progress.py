"""Progress bars on stderr, drawn by ``rich.progress``.

``progress_bar(total, desc)`` gives the loops one object to advance, ``bar.update(n=1,
**postfix)`` (the interface ``torchref.train(progress=...)`` calls too). On a terminal rich redraws
one line in place; anywhere else (a log file, a pipe, pytest's capture) a line is written at the
first step, at each quarter of the way and at the end, so logs stay short.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..functional import _checks

__all__ = ["Bar", "progress_bar"]

_LOG_WIDTH = 200
"""Columns of a line written to a non-terminal (rich's default there is 80, which would crop the postfix)."""


class Bar:
    """What a loop advances: ``update(n=1, **postfix)`` moves ``n`` steps on and shows the keyword
    values after the bar (``loss=0.0123``), replacing the earlier values of those names.
    ``count`` is the number of steps done."""

    def __init__(self, total: int, progress: Progress | None = None, task: TaskID | None = None):
        self.total, self.count = total, 0
        self._progress, self._task = progress, task
        self._postfix: dict[str, object] = {}
        self._logged = -1  # the last quarter written to a non-terminal
        self._log = progress is not None and not progress.console.is_terminal

    def update(self, n: int = 1, **postfix) -> None:
        self.count = min(self.count + n, self.total)
        self._postfix.update(postfix)
        if self._progress is None or self._task is None:
            return
        shown = ", ".join(f"{k}={_format(v)}" for k, v in self._postfix.items())
        self._progress.update(self._task, completed=self.count, postfix=shown)
        if self._log and self.count < self.total and 4 * self.count // self.total > self._logged:
            self._logged = 4 * self.count // self.total
            self._progress.console.print(self._progress.get_renderable())  # rich writes the last line itself


@contextlib.contextmanager
def progress_bar(total: int, desc: str = "", *, enabled: bool = True, stream: TextIO | None = None) -> Iterator[Bar]:
    """A :class:`Bar` of ``total`` steps labelled ``desc`` on ``stream`` (default stderr), for a
    ``with`` block; with ``enabled=False`` nothing is written.

    >>> import io
    >>> log = io.StringIO()
    >>> with progress_bar(4, "demo", stream=log) as bar:
    ...     for _ in range(4):
    ...         bar.update(loss=0.5)
    >>> last = log.getvalue().splitlines()[-1]
    >>> last.startswith("demo "), "100%" in last, "4/4" in last, last.endswith("loss=0.5")
    (True, True, True, True)
    """
    total = _checks.non_negative_int("total", total, "progress_bar")
    if not enabled:
        yield Bar(total)
        return
    console = Console(file=sys.stderr if stream is None else stream)
    if not console.is_terminal:
        console.width = _LOG_WIDTH
    columns = (TextColumn("{task.description}"), BarColumn(bar_width=24), TaskProgressColumn(),
               MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[postfix]}"))
    with Progress(*columns, console=console, auto_refresh=console.is_terminal) as progress:
        yield Bar(total, progress, progress.add_task(desc, total=total, postfix=""))


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
