"""What handlers are given: audio (:class:`AudioChunk`), gaps (:class:`Gap`), bus events
(:class:`BusEvent`), playback events (:class:`PlaybackEvent`) and the reason a stream ended
(:class:`StopReason`). Plain values, re-exported by :mod:`streamserver.handler`, the
module handlers import."""

from __future__ import annotations

import enum
from typing import Any

import msgspec
import numpy as np

from .audio import ENCODING_L16
from .audio import decode as audio_decode

__all__ = ["AudioChunk", "BusEvent", "Gap", "PlaybackEvent", "StopReason"]


class StopReason(enum.StrEnum):
    """Why a stream ended; passed to ``Handler.on_stop``."""

    STOP_EVENT = "stop"  # the provider sent a `stop` event
    CLOSED = "closed"  # the provider closed the socket (Plivo's normal end)
    ERROR = "error"  # protocol violation or transport error
    TIMEOUT = "timeout"  # start or idle timeout
    DRAIN = "drain"  # the server is shutting down
    REPLACED = "replaced"  # a newer socket of the same stream took over (it resumes it)


class AudioChunk(msgspec.Struct, gc=False):
    """Audio of one track: ``num_samples`` samples starting at ``position``.

    ``position`` counts samples from stream start on this track, so gaps and alignment are
    exact: the chunk covers ``[position, end)``. ``payload`` is the audio as received
    (μ-law or L16 little-endian bytes, per ``encoding``), so a handler can forward or store
    it without touching the samples; ``samples`` (int16 numpy array) is decoded on first
    use and cached — a stream whose handlers only forward or store bytes never pays for
    decoding. Build one from PCM with :meth:`from_pcm`. Treat it as read-only.
    """

    track: str
    position: int
    sample_rate: int
    num_samples: int
    payload: bytes | None = None
    encoding: str = ENCODING_L16
    pcm: np.ndarray | None = None

    @classmethod
    def from_pcm(
        cls, track: str, samples: np.ndarray, position: int, sample_rate: int
    ) -> AudioChunk:
        """A chunk of already-decoded int16 samples (no payload)."""
        return cls(track, position, sample_rate, len(samples), None, ENCODING_L16, samples)

    @property
    def samples(self) -> np.ndarray:
        pcm = self.pcm
        if pcm is None:
            assert self.payload is not None
            pcm = self.pcm = audio_decode(self.payload, self.encoding)
        return pcm

    @property
    def end(self) -> int:
        return self.position + self.num_samples

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


class Gap(msgspec.Struct, frozen=True):
    """Audio that never arrived (missing ``chunk`` numbers or a timestamp jump).

    Recorders fill it with exactly ``samples`` of silence at ``position``.
    """

    track: str
    position: int
    samples: int


class BusEvent(msgspec.Struct, frozen=True):
    """A message on the stream's event bus, published by one handler for the others.

    ``topic`` names the kind (``"transcript"``, ``"handler.error"``, or your own, dotted);
    ``data`` is any value (treat it as read-only); ``source`` is the publishing handler's
    name (``"session"`` for events the session itself publishes).
    """

    topic: str
    data: Any
    source: str


class PlaybackEvent(msgspec.Struct, frozen=True, gc=False):
    """What the server sent the caller, or the provider's answer to it, with the inbound
    track's ``position`` (samples received so far) at that moment: what a recording of
    what the caller heard is made of. Handlers whose ``taps_playback(options)`` is true
    get these in ``on_event``, in order.

    ``kind``: ``"audio"`` (``payload``: audio sent, in the stream's encoding),
    ``"checkpoint"`` (``name``), ``"clear"``, ``"played"`` (``name``: the checkpoint whose
    audio the provider reports played) and ``"cleared"`` (the provider dropped its queue;
    right after ``"clear"`` on providers that do not answer one).
    """

    kind: str
    position: int
    payload: bytes = b""
    name: str = ""
