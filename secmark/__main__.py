"""``python -m secmark``: the ``secmark`` command."""

from __future__ import annotations

import sys

from secmark.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
