"""The workers of one host asking each other about their streams (``serve --workers N``).

The control app runs in one worker (or, on the stream port, in whichever worker accepted
the request), but the streams are spread over all of them. Each worker answers its peers
on a Unix socket in the supervisor's shared directory (``{dir}/worker-{n}.sock``, on
``/dev/shm`` beside the metrics files) with :class:`PeerServer`; the control app asks
every other worker through :class:`Peers`:

- ``{"op": "streams"}`` -> ``{"streams": [row, ...]}``: its live streams, as ``/streams``
  lists them (each row with its ``worker``);
- ``{"op": "callback", "callback": {...}}`` -> ``{"delivered": n}``: publish a Plivo
  callback to its streams of that call (or that stream).

One JSON line each way per connection. A worker that does not answer within
``timeout_s`` (restarting, stuck) is left out of that answer and logged; the request
still succeeds with what the others said.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .control.local import Callback, deliver_callback, stream_rows

if TYPE_CHECKING:
    from .net import StreamServer

__all__ = ["PeerServer", "Peers", "peer_socket"]

log = logging.getLogger("streamserver.supervisor")

#: A request or an answer: far more than a callback's fields or a few thousand rows.
MAX_LINE_BYTES = 16 * 1024 * 1024


def peer_socket(directory: str | os.PathLike[str], worker: int) -> Path:
    """Where worker ``worker`` answers its peers."""
    return Path(directory) / f"worker-{worker}.sock"


class PeerServer:
    """This worker's answers to its peers, about the streams of ``server``."""

    def __init__(self, directory: str | os.PathLike[str], worker: int, server: StreamServer):
        self.path = peer_socket(directory, worker)
        self.worker = str(worker)
        self.server = server
        self._listener: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)  # left by this worker's previous life
        self._listener = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_LINE_BYTES
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # One request's boundary: a bad request gets an error answer, never a crash.
        try:
            request = json.loads(await reader.readline())
            answer = self.answer(request)
        except Exception as exc:
            answer = {"error": str(exc) or type(exc).__name__}
        try:
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def answer(self, request: Any) -> dict[str, Any]:
        """The answer to one request (see the module docstring)."""
        op = request.get("op") if isinstance(request, dict) else None
        if op == "streams":
            rows = stream_rows(self.server)
            for row in rows:
                row["worker"] = self.worker
            return {"streams": rows}
        if op == "callback":
            cb = Callback.from_dict(request.get("callback") or {})
            return {"delivered": deliver_callback(self.server, cb)}
        raise ValueError(f"unknown op {op!r}")

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
        self.path.unlink(missing_ok=True)


class Peers:
    """The other workers of this host, as the control app of worker ``worker`` asks them."""

    def __init__(
        self, directory: str | os.PathLike[str], worker: int, *, timeout_s: float = 2.0
    ) -> None:
        self.directory = Path(directory)
        self.worker = str(worker)
        self.own = peer_socket(directory, worker)
        self.timeout_s = timeout_s

    def _sockets(self) -> list[Path]:
        with contextlib.suppress(OSError):
            return sorted(
                p
                for p in self.directory.iterdir()
                if p.name.startswith("worker-") and p.suffix == ".sock" and p != self.own
            )
        return []

    async def _ask(self, path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE_BYTES)
                try:
                    writer.write(json.dumps(request).encode() + b"\n")
                    await writer.drain()
                    answer = json.loads(await reader.readline())
                finally:
                    writer.close()
        except (OSError, TimeoutError, ValueError) as exc:
            # A restarting worker (its socket not there yet, or gone): left out this time.
            log.warning("worker %s: no answer from %s: %s", self.worker, path.name, exc)
            return None
        if not isinstance(answer, dict) or "error" in answer:
            log.warning("worker %s: %s refused %s: %s", self.worker, path.name,
                        request.get("op"), answer)  # fmt: skip
            return None
        return answer

    async def _ask_all(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        answers = await asyncio.gather(*(self._ask(p, request) for p in self._sockets()))
        return [a for a in answers if a is not None]

    async def streams(self) -> list[dict[str, Any]]:
        """Every other worker's live streams (rows with their ``worker``)."""
        rows: list[dict[str, Any]] = []
        for answer in await self._ask_all({"op": "streams"}):
            rows.extend(r for r in answer.get("streams", []) if isinstance(r, dict))
        return rows

    async def deliver(self, cb: Callback) -> int:
        """Hand ``cb`` to every other worker's streams it concerns; how many took it."""
        answers = await self._ask_all({"op": "callback", "callback": cb.to_dict()})
        return sum(int(a.get("delivered", 0)) for a in answers)
