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
from .protocol.dialect import PLIVO, Dialect

__all__ = ["Playback", "Sender"]


class Sender(Protocol):
    """What playback needs of the transport (a subset of ``session.Outlet``)."""

    def send_text(self, data: bytes, urgent: bool = True) -> None: ...
    def send_binary(self, data: bytes, urgent: bool = True) -> None: ...
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
        "_dialect",
        "_encode_play",
        "_metrics",
        "_names",
        "_on_stuck",
        "_outlet",
        "_pending",
        "_send_audio",
        "_send_timeout_s",
        "_step",
        "_unique",
        "_whole",
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
        self._dialect: Dialect = PLIVO
        self._encode_play = PLIVO.encode_play
        self._send_audio = outlet.send_text
        self._step = 0  # bytes per outbound audio frame
        self._whole = True
        self._pending = b""  # audio waiting to fill a frame (dialects with play_frame_ms > 20)
        self._unique = False  # checkpoints go out under unique wire names (name#n)
        self._names: dict[str, str] = {}  # wire name -> the handler's name (unique mode)

    def start(
        self,
        fmt: AudioFormat,
        stream_id: str,
        logger: logging.LoggerAdapter[logging.Logger],
        dialect: Dialect = PLIVO,
    ) -> None:
        """The stream started: its format, id and dialect are known."""
        self.fmt = fmt
        self.stream_id = stream_id
        self.logger = logger
        self._dialect = dialect
        self._encode_play = dialect.encode_play
        out = self._outlet
        self._send_audio = out.send_binary if dialect.binary_audio else out.send_text
        self._step = fmt.frame_bytes * dialect.play_frame_ms // 20
        self._whole = self._step == fmt.frame_bytes  # handlers' 20 ms frames go as they are
        # Every provider but Plivo (whose names the emulator and load tester match) gets
        # each checkpoint under a unique wire name: a mark echoed after a clear (Twilio
        # documents it) can never resolve a newer checkpoint of the same name.
        self._unique = dialect.name != PLIVO.name
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
        self._count(data)

    def _send_frame(self, payload: bytes) -> None:
        # One outbound audio frame, in the dialect's encoding and frame type.
        fmt = self.fmt
        assert fmt is not None
        data = self._encode_play(payload, fmt.encoding, fmt.sample_rate, self.stream_id)
        self._send_audio(data, False)
        self._count(data)

    def _count(self, data: bytes) -> None:
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
        """Queue encoded audio as frames of the dialect's ``play_frame_ms`` (20 ms but on
        Exotel, 200 ms) without waiting."""
        fmt = self.fmt
        if fmt is None or not self.active or not payload:
            return
        step = self._step
        if self._pending or not self._whole:
            self._play_buffered(payload, step)
            return
        if len(payload) <= step:
            # One frame (the per-frame echo/bot case): _send_frame inlined.
            data = self._encode_play(payload, fmt.encoding, fmt.sample_rate, self.stream_id)
            self._send_audio(data, False)
            self.frames_sent += 1
            m = self._metrics
            m.frames_sent += 1
            m.bytes_sent += len(data)
            return
        for i in range(0, len(payload), step):
            self._send_frame(payload[i : i + step])

    def _play_buffered(self, payload: bytes, step: int) -> None:
        # Frames longer than what handlers hand over (Exotel: >= 3.2 kB): whole frames go
        # now, the rest waits for more audio or the next checkpoint (flush_pending).
        data = self._pending + payload
        end = len(data) - len(data) % step
        for i in range(0, end, step):
            self._send_frame(data[i : i + step])
        self._pending = data[end:]

    def _flush_pending(self) -> None:
        if self._pending:
            tail, self._pending = self._pending, b""
            fmt = self.fmt
            assert fmt is not None
            # A whole frame, padded with silence: Exotel takes no chunk under 3.2 kB.
            missing = (self._step - len(tail)) // fmt.bytes_per_sample
            self._send_frame(tail + audio.silence_bytes(fmt.encoding, missing))

    def checkpoint(self, name: str) -> asyncio.Future[bool]:
        """Send a checkpoint; resolved True by ``playedStream``, False by a clear or the end."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not self.active:
            fut.set_result(False)
            return fut
        self._flush_pending()
        wire = name
        if self._unique:
            wire = f"{name}#{self.frames_sent}"
            self._names[wire] = name
        self._checkpoints.setdefault(wire, deque()).append((fut, self._clear_epoch))
        self._send(self._dialect.encode_checkpoint(self.stream_id, wire))
        return fut

    def clear(self) -> None:
        """Send the dialect's clear; checkpoints sent before it resolve False once it is
        done: at once on providers that do not answer a clear."""
        self._clear_epoch += 1
        self._pending = b""
        self._send(self._dialect.encode_clear(self.stream_id))
        if not self._dialect.acks_clear:
            self.cleared()

    def send_dtmf(self, digits: str) -> None:
        """Send DTMF; raises the dialect's ``NotSupported`` where the provider has none."""
        self._send(self._dialect.encode_dtmf(self.stream_id, digits))

    # -- the provider's answers --------------------------------------------------------------

    def played(self, name: str) -> str | None:
        """A checkpoint's answer: the oldest pending checkpoint of that wire name resolves
        True. Returns the handler's name for it, or None for an answer that resolves
        nothing (a mark echoed after a clear)."""
        waiting = self._checkpoints.get(name)
        found = False
        while waiting:
            fut, _ = waiting.popleft()
            if not fut.done():
                fut.set_result(True)
                found = True
                break
        if waiting is not None and not waiting:
            del self._checkpoints[name]
        if not self._unique:
            return name
        orig = self._names.pop(name, None)
        return orig if found else None

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
                self._names.pop(name, None)
