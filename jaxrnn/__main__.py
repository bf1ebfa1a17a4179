"""``python -m jaxrnn``: the exercises' command line (see ``jaxrnn._cli``)."""

import sys

from ._cli import main

sys.exit(main())
