"""``python -m aiosio`` is the ``aiosio`` command."""

from __future__ import annotations

import sys

from aiosio.cli import main

if __name__ == "__main__":
    sys.exit(main())
