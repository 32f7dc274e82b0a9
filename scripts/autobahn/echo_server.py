"""A WebSocket echo server made of the project's own wire layer, for Autobahn|Testsuite.

Test-only (``make autobahn``), never a production route: the connection is the server's
own :class:`streamserver.net.Connection` — the request checks, the gate, the upgrade, the
one-frame fast path, :class:`~streamserver.protocol.websocket.FrameReader` (fragments,
control frames, close codes), pings, the closing handshake and failing a connection —
with an echo where a stream's session would be: every message goes back as it came, and a
text message that is not UTF-8 fails the connection with 1007, as the session does.

The limits are the production defaults but for the message size, its fragments and the
output buffer: Autobahn's 9.x cases send messages of up to 16 MB in up to 65,536 frames,
far past what a media stream may send.

    python scripts/autobahn/echo_server.py --port 9001     # prints "listening on PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from streamserver.handler import StopReason
from streamserver.metrics import Metrics
from streamserver.net.batching import ReadBatcher, WriteCoalescer
from streamserver.net.connection import Connection
from streamserver.net.gate import Accept, Gate
from streamserver.net.limits import ConnectionLimits
from streamserver.protocol.websocket import CloseCode
from streamserver.runtime import run_async
from streamserver.session import Route, SessionLimits

log = logging.getLogger("autobahn.echo")

PATH = "/echo"
MAX_MESSAGE_BYTES = 32 << 20  # 9.1.6 / 9.2.6: 16 MB messages
MAX_FRAGMENTS = 1 << 20  # 9.3.1 / 9.4.1: a 4 MB message in 64-byte fragments


class EchoSession:
    """What a :class:`Connection` feeds when a stream opens: here, an echo."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.started = True
        self.ended = False
        self.observer: Any = None
        self.frames = 0
        self.bytes_received = 0
        self.logger = logging.LoggerAdapter(log, {"stream_id": "-", "call_id": "-"})

    def feed_text(self, data: bytes) -> None:
        if self.ended:
            return
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:  # RFC 6455 §8.1, like the session: fail with 1007
            self.ended = True
            self.conn.close(CloseCode.INVALID_DATA, "text message is not UTF-8")
            return
        self.conn.send_text(data)

    def feed_binary(self, data: bytes) -> None:
        if not self.ended:
            self.conn.send_binary(data)

    def end(self, reason: StopReason) -> None:
        self.ended = True

    def tick(self, now: float) -> bool:
        return False


class EchoServer:
    """The :class:`~streamserver.net.connection.ConnectionOwner` of every echo connection."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.limits = SessionLimits()
        self.gate = Gate({PATH: Route(PATH, ())}, self.metrics, max_streams=1 << 30)
        self.reads = ReadBatcher(self.metrics, frames=1, min_streams=1 << 30)
        self.writes = WriteCoalescer(frames=1, min_streams=1 << 30, delay_s=0.03)
        self.max_message_bytes = MAX_MESSAGE_BYTES
        self.conn_limits = ConnectionLimits(
            max_send_buffer_bytes=4 * MAX_MESSAGE_BYTES, max_fragments=MAX_FRAGMENTS
        )

    def connection_made(self, conn: Connection) -> None:
        pass

    def open_session(self, conn: Connection, accept: Accept) -> EchoSession:
        return EchoSession(conn)

    def stream_opened(self, conn: Connection) -> None:
        pass

    def connection_lost(self, conn: Connection) -> None:
        pass

    def hand_off(self, conn: Connection, transport: asyncio.Transport, data: bytes) -> None:
        transport.close()


async def serve(host: str, port: int) -> None:
    owner = EchoServer()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(owner), host, port)  # type: ignore[arg-type]
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # each failed connection logs a WARNING
    run_async(lambda: serve(args.host, args.port))


if __name__ == "__main__":
    main()
