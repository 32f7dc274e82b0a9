#!/usr/bin/env python3
"""Load-test a stream server with many simulated Plivo calls (same as `streamserver loadtest`).

    scripts/loadtest.py -n 1000 --duration 30 --handlers recorder,echo \\
        --server-cpus 0 --generator-cpus 1 --verify-recordings

Run with --help for every option.
"""

from __future__ import annotations

import sys

from streamserver.loadtest import main

if __name__ == "__main__":
    sys.exit(main())
