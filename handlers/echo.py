"""``echo``: sends the caller's audio straight back into the call (bidirectional streams).

Used by tests and latency measurements: every inbound frame is returned as a ``playAudio``
frame with the same bytes, so a client can match what it sent with what it hears.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from streamserver.handler import AudioChunk, Handler, StreamContext

__all__ = ["Echo", "EchoOptions"]


class EchoOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[handler.echo]`` options."""

    #: Which track to send back.
    track: Literal["inbound", "outbound"] = "inbound"


class Echo(Handler):
    """Plays every chunk of one track back to the caller."""

    Options = EchoOptions

    def __init__(self, ctx: StreamContext, options: Any = None) -> None:
        super().__init__(ctx, options or EchoOptions())
        self._track = self.options.track
        self._active = ctx.bidirectional

    async def on_start(self) -> None:
        if not self._active:
            self.ctx.logger.warning(
                "echo needs a bidirectional route; nothing will be sent on %s", self.ctx.route
            )

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        # Inline on the receive path: the frame goes straight back out, no task switch.
        if not self._active or chunk.track != self._track:
            return
        payload = chunk.payload
        if payload is None:
            payload = self.ctx.format.encode(chunk.samples)
        self.ctx.play_encoded_nowait(payload)
