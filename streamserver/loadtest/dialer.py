"""Connection setup: open each stream's TCP connection, on the ramp's schedule.

The :class:`Dialer` starts one short task per stream (connect, with a timeout); once the
connection is made the :class:`~streamserver.loadtest.stream.Stream` does the upgrade
itself. A stream that never gets a connection is handed to ``on_unconnected`` with its
error set and its state ``DONE``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .stream import CONNECTING, DONE, Stream
from .wire import Target

__all__ = ["Dialer"]


class Dialer:
    """Connects streams to ``target``; :meth:`stop` cancels the connections being made."""

    def __init__(
        self, target: Target, timeout_s: float, on_unconnected: Callable[[Stream], None]
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.on_unconnected = on_unconnected
        self.stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, streams: list[Stream], ramp_s: float) -> None:
        """Dial ``streams`` evenly spread over ``ramp_s`` seconds from now."""
        loop = asyncio.get_running_loop()
        n = len(streams)
        for i, st in enumerate(streams):
            delay = ramp_s * i / n if n > 1 else 0.0
            loop.call_later(delay, self.dial, st)

    def dial(self, st: Stream) -> None:
        """Start connecting ``st`` now (unless stopping)."""
        if self.stopping:
            st.error = st.error or "stopped before connecting"
            st.state = DONE
            self.on_unconnected(st)
            return
        task = asyncio.get_running_loop().create_task(self._connect(st))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        """Dial no more; cancel the connections being made."""
        self.stopping = True
        self.cancel()

    def cancel(self) -> None:
        """Cancel the connections being made."""
        for task in list(self._tasks):
            task.cancel()

    async def _connect(self, st: Stream) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                await loop.create_connection(lambda: st, self.target.host, self.target.port)
        except TimeoutError:
            st.error = f"TCP connect timed out after {self.timeout_s} s"
        except asyncio.CancelledError:
            st.error = st.error or "stopped before the connection was made"
            raise
        except OSError as exc:
            st.error = f"cannot connect: {exc.strerror or exc}"
        finally:
            if st.state == CONNECTING:
                st.state = DONE
                self.on_unconnected(st)
