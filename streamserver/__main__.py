"""``python -m streamserver``: same as the ``streamserver`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
