"""A small text progress bar on stderr (jaxrnn does not depend on tqdm)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes:02d}:{secs:02d}"


class ProgressBar:
    """``desc  45%|#########           | 9/20 [00:03<00:04, loss=0.123]``.

    On a terminal the line is redrawn in place (at most every ``min_interval`` seconds, and always
    at the end); on anything else (a log file, a pipe, pytest's capture) a line is written at the
    first step and at every quarter of the way, so logs stay short. ``update(n, **postfix)``
    advances by n steps and shows the postfix values; ``close()`` writes the final line. Usable as
    a context manager.

    >>> import io
    >>> stream = io.StringIO()
    >>> with ProgressBar(4, "demo", stream=stream) as bar:
    ...     for _ in range(4):
    ...         bar.update(loss=0.5)
    >>> stream.getvalue().splitlines()[-1].startswith("demo 100%|")
    True
    """

    def __init__(
        self,
        total: int,
        desc: str = "",
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        width: int = 24,
        min_interval: float = 0.1,
    ):
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"ProgressBar: `total` must be a non-negative int, got {total!r}")
        self.total = total
        self.desc = desc
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.width = width
        self.min_interval = min_interval
        self.count = 0
        self.postfix: dict[str, object] = {}
        self._start = time.perf_counter()
        self._last_draw = -float("inf")
        self._last_quarter = -1
        self._closed = False
        isatty = getattr(self.stream, "isatty", None)
        self._tty = bool(isatty and isatty())

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        """The bar as text."""
        elapsed = time.perf_counter() - self._start
        frac = self.count / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + " " * (self.width - filled)
        remaining = elapsed / self.count * (self.total - self.count) if self.count else 0.0
        extras = "".join(f", {k}={_format_value(v)}" for k, v in self.postfix.items())
        head = f"{self.desc} " if self.desc else ""
        return (
            f"{head}{frac * 100:3.0f}%|{bar}| {self.count}/{self.total} "
            f"[{_format_seconds(elapsed)}<{_format_seconds(remaining)}{extras}]"
        )

    def update(self, n: int = 1, **postfix) -> None:
        """Advance by ``n`` steps; keyword values replace the shown postfix entries of that name."""
        self.count = min(self.count + n, self.total)
        self.postfix.update(postfix)
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._tty:
            if now - self._last_draw >= self.min_interval or self.count == self.total:
                self.stream.write("\r" + self.line())
                self.stream.flush()
                self._last_draw = now
        else:
            quarter = 4 * self.count // self.total if self.total else 4
            if quarter > self._last_quarter:
                self.stream.write(self.line() + "\n")
                self._last_quarter = quarter

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self._tty:
            self.stream.write("\r" + self.line() + "\n")
        elif self._last_quarter < 4:
            self.stream.write(self.line() + "\n")
        self.stream.flush()


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
