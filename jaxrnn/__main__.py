"""``python -m jaxrnn``: the exercises' command line (see ``jaxrnn.lesson._cli``)."""

import sys

from .lesson._cli import main

if __name__ == "__main__":  # not when imported, e.g. by pytest --doctest-modules
    sys.exit(main())
