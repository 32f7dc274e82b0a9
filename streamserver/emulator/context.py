"""What every part of the call simulator shares: settings, the store, the HTTP client for
webhooks and media, the background tasks, the speech synthesizer and the recordings
directory.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx

from .callstate import STOP_TIMEOUT_S
from .http_client import make_http_client
from .media import Tts
from .settings import EmulatorSettings
from .store import Store

__all__ = ["SimContext"]

log = logging.getLogger("streamserver.emulator")

#: At shutdown, how long callbacks still on their way may take before they are cancelled.
CALLBACK_GRACE_S = 1.0


class SimContext:
    """The simulator's shared resources. :meth:`start` before use, :meth:`aclose` after."""

    def __init__(
        self, settings: EmulatorSettings, store: Store, http: httpx.AsyncClient | None
    ) -> None:
        self.settings = settings
        self.store = store
        #: Base of ``recording_url``: settings.public_url, else set by the server once bound.
        self.public_url = settings.public_url.rstrip("/")
        self.tts = Tts(settings.tts)
        self.recordings_dir = Path(settings.recordings_dir) if settings.recordings_dir else None
        self._http = http
        self._own_http = http is None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        """Create the HTTP client and the recordings directory."""
        if self._http is None:
            self._http = make_http_client(self.settings.http_timeout_s)
        if self.recordings_dir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="plivo-emulator-recordings-")
            self.recordings_dir = Path(self._tmpdir.name)
        else:
            self.recordings_dir.mkdir(parents=True, exist_ok=True)

    async def aclose(self) -> None:
        """Give the background tasks (the last calls' hangup callbacks...) a moment, cancel
        what is left, close the HTTP client, remove temporary files."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CALLBACK_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STOP_TIMEOUT_S)
        if self._own_http and self._http is not None:
            await self._http.aclose()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    @property
    def started(self) -> bool:
        """:meth:`start` has run (the HTTP client exists)."""
        return self._http is not None

    @property
    def http(self) -> httpx.AsyncClient:
        """The client for webhooks and media; raises before :meth:`start`."""
        if self._http is None:
            raise RuntimeError("Simulator.start() was not called")
        return self._http

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; failures are logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("emulator: %s failed", what, exc_info=t.exception())

        task.add_done_callback(done)
        return task
