"""matplotlib for the figures of the library and the lesson (the optional extra ``plots``).

matplotlib is imported only when a figure is drawn, on the non-interactive Agg backend, so
``import jaxrnn`` never needs it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["require_matplotlib", "save_figure"]


def require_matplotlib():
    """``matplotlib.pyplot`` on the Agg backend, or an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("figures need matplotlib: pip install 'jaxrnn[plots]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Lay ``fig`` out (``tight_layout``, unless it was made with a layout engine of its own, e.g.
    ``layout="constrained"``), write it to ``path`` (PNG at 110 dpi for a ``.png`` name) and close it."""
    path = Path(path)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    require_matplotlib().close(fig)
    return path
