"""What the transcriber publishes on a stream's event bus (and writes as JSON lines).

Other handlers import these to read the events: a player stops talking on
:class:`SpeechStarted`, a bot answers a :class:`Transcript`.
"""

from __future__ import annotations

import msgspec

__all__ = ["SpeechEnded", "SpeechStarted", "Transcript"]


class Transcript(msgspec.Struct, frozen=True, kw_only=True):
    """One recognised utterance (bus topic ``"transcript"``, one line of the JSONL file).

    Times are seconds from stream start on the track's clock (``*_sample`` / ``sample_rate``);
    ``latency_s`` runs from the end of the utterance (the VAD's decision) to the result, and
    includes waiting in the backlog. ``confidence`` is in 0..1, or None when the engine does
    not say. ``is_final`` is False for a streaming engine's partial results.
    """

    text: str
    confidence: float | None
    track: str
    start_s: float
    end_s: float
    start_sample: int
    end_sample: int
    sample_rate: int
    engine: str
    latency_s: float
    is_final: bool = True
    utterance: int = 0
    call_id: str = ""
    stream_id: str = ""


class SpeechStarted(msgspec.Struct, frozen=True, kw_only=True):
    """Bus topic ``"speech.start"``: the caller (``track``) started speaking.

    Speech began at ``start_sample``; the VAD was sure of it at ``detected_sample``.
    """

    track: str
    start_sample: int
    detected_sample: int
    sample_rate: int

    @property
    def start_s(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def detected_s(self) -> float:
        return self.detected_sample / self.sample_rate


class SpeechEnded(msgspec.Struct, frozen=True, kw_only=True):
    """Bus topic ``"speech.end"``: the utterance ended; ``kept`` False if it was too short."""

    track: str
    start_sample: int
    end_sample: int
    sample_rate: int
    kept: bool
