"""The outbound side of one stream: ``playAudio`` frames, checkpoints, clear, DTMF.

:class:`Playback` encodes what handlers play into the stream's format and sends it through
the session's outlet; it keeps the checkpoints that wait for ``playedStream`` and resolves
them False when a clear or the end of the stream means their audio will never be played.
No sockets here: the outlet is the session's transport seam.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from . import audio
from .audio import AudioFormat
from .metrics import Metrics
from .protocol import plivo

__all__ = ["Playback", "Sender"]


class Sender(Protocol):
    """What playback needs of the transport (a subset of ``session.Outlet``)."""

    def send_text(self, data: bytes, urgent: bool = True) -> None: ...
    def write_paused(self) -> bool: ...
    async def wait_writable(self) -> None: ...


class Playback:
    """Playback and checkpoints of one stream; inactive until :meth:`start`, and again
    after :meth:`close` (sends nothing, checkpoints resolve False at once).

    ``on_stuck`` is called when the socket stayed unwritable for ``send_timeout_s``.
    """

    __slots__ = (
        "_checkpoints",
        "_clear_epoch",
        "_metrics",
        "_on_stuck",
        "_outlet",
        "_send_timeout_s",
        "active",
        "fmt",
        "frames_sent",
        "logger",
        "stream_id",
    )

    def __init__(
        self,
        outlet: Sender,
        metrics: Metrics,
        *,
        send_timeout_s: float,
        on_stuck: Callable[[], None],
    ) -> None:
        self._outlet = outlet
        self._metrics = metrics
        self._send_timeout_s = send_timeout_s
        self._on_stuck = on_stuck
        self.active = False
        self.fmt: AudioFormat | None = None
        self.stream_id = "-"
        self.logger = logging.LoggerAdapter(
            logging.getLogger("streamserver.session"), {"stream_id": "-", "call_id": "-"}
        )
        self.frames_sent = 0
        self._checkpoints: dict[str, deque[tuple[asyncio.Future[bool], int]]] = {}
        self._clear_epoch = 0

    def start(
        self, fmt: AudioFormat, stream_id: str, logger: logging.LoggerAdapter[logging.Logger]
    ) -> None:
        """The stream started: its format and id are known."""
        self.fmt = fmt
        self.stream_id = stream_id
        self.logger = logger
        self.active = True

    def close(self) -> None:
        """The stream ended: nothing more is sent; pending checkpoints resolve False."""
        self.active = False
        for waiting in self._checkpoints.values():
            for fut, _ in waiting:
                if not fut.done():
                    fut.set_result(False)
        self._checkpoints.clear()

    # -- sending ---------------------------------------------------------------------------

    def _send(self, data: bytes, urgent: bool = True) -> None:
        # Audio is not urgent: the transport may coalesce it (send_batch_frames); control
        # messages are, and flush what is queued before them, so the order never changes.
        if not self.active:
            return
        self._outlet.send_text(data, urgent)
        self.frames_sent += 1
        m = self._metrics
        m.frames_sent += 1
        m.bytes_sent += len(data)

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        """Resample and encode a whole clip to the stream's format, send it."""
        fmt = self.fmt
        if fmt is None or not self.active:
            return
        samples = audio.to_int16(np.asarray(pcm))
        if rate != fmt.sample_rate:
            # Each play() is a whole clip: resample it completely (a streaming resampler
            # would hold back its tail until the next call).
            samples = audio.resample(samples, rate, fmt.sample_rate)
        await self.play_encoded(fmt.encode(samples))

    async def play_encoded(self, payload: bytes) -> None:
        """Send encoded audio; wait (up to ``send_timeout_s``) while the socket is full."""
        self.play_encoded_nowait(payload)
        outlet = self._outlet
        if outlet.write_paused():
            try:
                await asyncio.wait_for(outlet.wait_writable(), self._send_timeout_s)
            except TimeoutError:
                self.logger.warning(
                    "socket not writable for %.1f s; closing stream", self._send_timeout_s
                )
                self._on_stuck()

    def play_encoded_nowait(self, payload: bytes) -> None:
        """Queue encoded audio as 20 ms ``playAudio`` frames without waiting."""
        fmt = self.fmt
        if fmt is None or not self.active or not payload:
            return
        step = fmt.frame_bytes
        if len(payload) <= step:
            # One frame (the per-frame echo/bot case): _send inlined.
            data = plivo.encode_play_audio(payload, fmt.encoding, fmt.sample_rate, self.stream_id)
            self._outlet.send_text(data, False)
            self.frames_sent += 1
            m = self._metrics
            m.frames_sent += 1
            m.bytes_sent += len(data)
            return
        enc, rate, sid = fmt.encoding, fmt.sample_rate, self.stream_id
        for i in range(0, len(payload), step):
            self._send(plivo.encode_play_audio(payload[i : i + step], enc, rate, sid), False)

    def checkpoint(self, name: str) -> asyncio.Future[bool]:
        """Send a checkpoint; resolved True by ``playedStream``, False by a clear or the end."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not self.active:
            fut.set_result(False)
            return fut
        self._checkpoints.setdefault(name, deque()).append((fut, self._clear_epoch))
        self._send(plivo.encode_checkpoint(self.stream_id, name))
        return fut

    def clear(self) -> None:
        """Send ``clearAudio``; checkpoints sent before it resolve False once it is done."""
        self._clear_epoch += 1
        self._send(plivo.encode_clear_audio(self.stream_id))

    def send_dtmf(self, digits: str) -> None:
        """Send ``sendDTMF``."""
        self._send(plivo.encode_send_dtmf(digits))

    # -- the provider's answers --------------------------------------------------------------

    def played(self, name: str) -> None:
        """``playedStream``: the oldest pending checkpoint of that name resolves True."""
        waiting = self._checkpoints.get(name)
        while waiting:
            fut, _ = waiting.popleft()
            if not fut.done():
                fut.set_result(True)
                break
        if waiting is not None and not waiting:
            del self._checkpoints[name]

    def cleared(self) -> None:
        """``clearedAudio``: checkpoints sent before the latest clear will never play."""
        epoch = self._clear_epoch
        for name in list(self._checkpoints):
            waiting = self._checkpoints[name]
            keep = deque((f, e) for f, e in waiting if e >= epoch)
            for fut, e in waiting:
                if e < epoch and not fut.done():
                    fut.set_result(False)
            if keep:
                self._checkpoints[name] = keep
            else:
                del self._checkpoints[name]
