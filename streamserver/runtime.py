"""Running the project's coroutines: one event loop (uvloop when installed) per process.

Shared by the command line, the emulator, the load tester and the demo, so none of them
imports another's entry point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["run_async"]


def run_async(main: Callable[[], Any]) -> Any:
    """Run a coroutine function on uvloop when available, else the default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())
