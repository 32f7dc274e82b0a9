"""Voice-activity segmentation for 8/16 kHz telephony audio.

:class:`Segmenter` cuts one track into utterances. It frames the audio (10, 20 or 30 ms),
asks the WebRTC VAD (``webrtcvad``, a GMM detector built for telephone-band speech) whether
each frame is speech, gates out frames quieter than an energy floor (the VAD alone fires on
faint line noise), and runs a small state machine over the decisions:

- **start**: at least 80 % of the frames in the last ``start_ms`` are speech. The utterance
  begins at the first speech frame of that window, minus ``padding_ms`` of pre-roll, so word
  onsets are not clipped. The decision is reported at once (:class:`SpeechStart`), which is
  what barge-in reacts to.
- **end**: at least 90 % of the frames in the last ``hangover_ms`` are non-speech. The
  utterance ends ``padding_ms`` after its last speech frame. Shorter than
  ``min_utterance_ms`` of speech: discarded as a click or cough. Longer than
  ``max_utterance_ms``: cut there and a new utterance starts at once.

Pure computation (numpy and webrtcvad, no I/O, no asyncio): positions are sample counts
from stream start, exactly as the session hands them to handlers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import msgspec
import numpy as np
import numpy.typing as npt
import webrtcvad

__all__ = [
    "VAD_SAMPLE_RATES",
    "Segmenter",
    "SpeechAudio",
    "SpeechEnd",
    "SpeechStart",
    "Utterance",
    "VadEvent",
    "VadOptions",
]

PCM = npt.NDArray[np.int16]

#: Rates the WebRTC VAD accepts.
VAD_SAMPLE_RATES = (8000, 16000, 32000, 48000)

_START_RATIO = 0.8  # share of speech frames in the start window that starts an utterance
_END_RATIO = 0.9  # share of non-speech frames in the hangover window that ends it
_EMPTY = np.zeros(0, dtype=np.int16)


class VadOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Voice-activity detection settings (``[handler.<name>.vad]``)."""

    #: WebRTC VAD mode, 0 (least aggressive, more speech) to 3 (most aggressive).
    aggressiveness: int = 2
    #: Analysis frame length.
    frame_ms: Literal[10, 20, 30] = 20
    #: Speech within this window starts an utterance (reaction time of barge-in).
    start_ms: int = 100
    #: Non-speech this long ends an utterance (pauses shorter than this stay inside).
    hangover_ms: int = 500
    #: Audio kept before the first and after the last speech frame.
    padding_ms: int = 200
    #: Utterances with less speech than this are dropped as noise.
    min_utterance_ms: int = 200
    #: Longer speech is cut into utterances of at most this length.
    max_utterance_ms: int = 20000
    #: Frames quieter than this (RMS, dB relative to full scale) are never speech.
    energy_floor_dbfs: float = -50.0

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError("aggressiveness must be 0, 1, 2 or 3")
        for name in ("start_ms", "hangover_ms", "min_utterance_ms", "max_utterance_ms"):
            if getattr(self, name) < self.frame_ms:
                raise ValueError(f"{name} must be at least frame_ms ({self.frame_ms})")
        if self.padding_ms < 0:
            raise ValueError("padding_ms must be >= 0")
        if self.max_utterance_ms <= self.min_utterance_ms:
            raise ValueError("max_utterance_ms must be greater than min_utterance_ms")


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech began at ``position``; it was recognised as speech at ``detected_at``.

    ``samples`` is the utterance's audio so far (pre-roll included) when the segmenter keeps
    audio, starting at ``start``.
    """

    track: str
    position: int
    detected_at: int
    start: int
    samples: PCM


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    """More audio of the utterance in progress (only with ``emit_audio``)."""

    track: str
    position: int
    samples: PCM


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """The utterance begun by the last :class:`SpeechStart` ended at ``end`` (exclusive).

    ``kept`` is False when it was too short to be an utterance.
    """

    track: str
    start: int
    end: int
    kept: bool


@dataclass(frozen=True, slots=True)
class Utterance:
    """One utterance of one track: int16 PCM covering ``[start_sample, end_sample)``.

    ``index`` counts this track's utterances from 0; ``cut`` is True when it was ended by
    ``max_utterance_ms`` rather than by silence.
    """

    track: str
    samples: PCM
    sample_rate: int
    start_sample: int
    end_sample: int
    index: int
    cut: bool = False

    @property
    def start_s(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.end_sample / self.sample_rate

    @property
    def duration_s(self) -> float:
        return (self.end_sample - self.start_sample) / self.sample_rate


VadEvent = SpeechStart | SpeechAudio | SpeechEnd | Utterance


class Segmenter:
    """Cuts one track's audio into utterances (see the module docstring).

    Feed it with :meth:`push` in order; each call returns the events it caused, in order.
    :meth:`flush` ends an utterance in progress at the end of the stream. ``keep_audio=False``
    detects speech without keeping audio (no :class:`Utterance` events), for barge-in.
    """

    def __init__(
        self,
        sample_rate: int,
        options: VadOptions | None = None,
        *,
        track: str = "inbound",
        keep_audio: bool = True,
        emit_audio: bool = False,
        max_gap_fill_s: float = 1.0,
    ) -> None:
        if sample_rate not in VAD_SAMPLE_RATES:
            raise ValueError(f"the VAD supports {VAD_SAMPLE_RATES} Hz, not {sample_rate}")
        o = options or VadOptions()
        self.options = o
        self.sample_rate = sample_rate
        self.track = track
        self.keep_audio = keep_audio
        self.emit_audio = emit_audio and keep_audio
        self._vad = webrtcvad.Vad(o.aggressiveness)
        fs = sample_rate * o.frame_ms // 1000
        self._fs = fs

        def frames(ms: int) -> int:
            return max(1, math.ceil(ms / o.frame_ms))

        self._n_start = frames(o.start_ms)
        self._n_hang = frames(o.hangover_ms)
        self._n_pad = frames(o.padding_ms) if o.padding_ms else 0
        self._min_speech = sample_rate * o.min_utterance_ms // 1000
        self._max_len = sample_rate * o.max_utterance_ms // 1000
        self._max_gap_fill = int(max_gap_fill_s * sample_rate)
        # Energy gate: a frame whose sum of squares is below this is silence.
        self._floor_energy = (32768.0 * 10 ** (o.energy_floor_dbfs / 20)) ** 2 * fs
        self.position = 0  # next sample position expected
        self._rest: PCM = _EMPTY
        self._rest_pos = 0
        # idle state: recent frames (pre-roll + start window) and their decisions
        self._recent: deque[tuple[int, PCM, bool]] = deque(maxlen=self._n_pad + self._n_start)
        # the start window's decisions, with a running count of speech frames in it
        self._start_window: deque[bool] = deque(maxlen=self._n_start)
        self._start_voiced = 0
        # speech state
        self.in_speech = False
        self._start = 0
        self._first_voiced = 0
        self._last_voiced_end = 0
        self._voiced_samples = 0
        self._parts: list[PCM] = []
        self._length = 0
        self._window: deque[bool] = deque(maxlen=self._n_hang)
        self._window_unvoiced = 0
        self._index = 0
        # counters
        self.frames = 0
        self.speech_frames = 0

    # -- feeding -----------------------------------------------------------------------

    def push(self, samples: PCM, position: int | None = None) -> list[VadEvent]:
        """Feed audio starting at sample ``position`` (default: right after the last)."""
        events: list[VadEvent] = []
        pos = self.position if position is None else position
        fs = self._fs
        if pos == self.position and len(samples) == fs and not len(self._rest):
            # A live stream's usual frame: the next one, exactly one analysis frame long.
            self.position = self._rest_pos = pos + fs
            self._frame(samples, pos, events)
            return events
        if pos > self.position:
            self._gap(pos - self.position, events)
        elif pos < self.position:  # overlap: keep what came first
            samples = samples[self.position - pos :]
        if not len(samples):
            return events
        self.position += len(samples)
        if len(self._rest):
            samples = np.concatenate([self._rest, samples])
            start = self._rest_pos
        else:
            start = self.position - len(samples)
        n = len(samples) // fs * fs
        for i in range(0, n, fs):
            self._frame(samples[i : i + fs], start + i, events)
        self._rest = samples[n:].copy() if n < len(samples) else _EMPTY
        self._rest_pos = start + n
        return events

    def flush(self) -> list[VadEvent]:
        """End the stream: close an utterance in progress (the partial frame is kept)."""
        events: list[VadEvent] = []
        if self.in_speech:
            if len(self._rest) and self.keep_audio:
                self._append(self._rest, events)
            self._end(events, at=self._rest_pos + len(self._rest), cut=False)
        self._rest = _EMPTY
        return events

    def _gap(self, n: int, events: list[VadEvent]) -> None:
        # A short gap is silence in the middle of the audio; a long one ends everything.
        if n <= self._max_gap_fill:
            self.push(np.zeros(n, dtype=np.int16), self.position)
            return
        events.extend(self.flush())
        self._recent.clear()
        self._start_window.clear()
        self._start_voiced = 0
        self.position += n
        self._rest_pos = self.position

    # -- the state machine ----------------------------------------------------------------

    def _is_speech(self, frame: PCM) -> bool:
        f = frame.astype(np.float32)
        if float(np.dot(f, f)) < self._floor_energy:
            return False
        return bool(self._vad.is_speech(frame.tobytes(), self.sample_rate))

    def _frame(self, frame: PCM, pos: int, events: list[VadEvent]) -> None:
        voiced = self._is_speech(frame)
        self.frames += 1
        if voiced:
            self.speech_frames += 1
        if not self.in_speech:
            # Without kept audio only the position and the decision are needed: holding
            # the frame would keep (and later free) an array per frame for nothing.
            self._recent.append((pos, frame if self.keep_audio else _EMPTY, voiced))
            sw = self._start_window
            if len(sw) == self._n_start and sw[0]:
                self._start_voiced -= 1
            sw.append(voiced)
            self._start_voiced += voiced
            if len(sw) == self._n_start and self._start_voiced >= _START_RATIO * self._n_start:
                self._begin(pos + len(frame), events)
            return
        if self.keep_audio:
            self._append(frame, events)
        else:
            self._length += len(frame)
        if voiced:
            self._last_voiced_end = pos + len(frame)
            self._voiced_samples += len(frame)
        self._push_window(voiced)
        w = self._window
        if len(w) == w.maxlen and self._window_unvoiced >= _END_RATIO * len(w):
            self._end(events, at=pos + len(frame), cut=False)
        elif self._length >= self._max_len:
            end = pos + len(frame)
            self._end(events, at=end, cut=True)
            # Speech goes on: the next utterance starts right here.
            self._open(end, end, end, events, announce=True)

    def _push_window(self, voiced: bool) -> None:
        w = self._window
        if len(w) == w.maxlen and not w[0]:
            self._window_unvoiced -= 1
        w.append(voiced)
        if not voiced:
            self._window_unvoiced += 1

    def _begin(self, detected_at: int, events: list[VadEvent]) -> None:
        recent = list(self._recent)
        window = recent[-self._n_start :]
        first = next(p for p, _, v in window if v)
        keep = [(p, f) for p, f, _ in recent if p >= first - self._n_pad * self._fs]
        start = keep[0][0] if keep else first
        self._recent.clear()
        self._start_window.clear()
        self._start_voiced = 0
        self._open(start, first, detected_at, events, announce=True)
        fs = self._fs  # every frame in the window is one analysis frame long
        for p, f in keep:
            if self.keep_audio:
                self._parts.append(f)
            self._length += fs
            if p >= first:
                self._voiced_samples += fs
        self._last_voiced_end = detected_at
        # The start window's decisions seed the end window.
        for _, _, v in window:
            self._push_window(v)
        if events and isinstance(events[-1], SpeechStart):
            last = events[-1]
            events[-1] = SpeechStart(
                last.track, last.position, last.detected_at, start, self._joined()
            )

    def _open(
        self, start: int, first: int, detected_at: int, events: list[VadEvent], announce: bool
    ) -> None:
        self.in_speech = True
        self._start = start
        self._first_voiced = first
        self._last_voiced_end = detected_at
        self._voiced_samples = 0
        self._parts = []
        self._length = 0
        self._window.clear()
        self._window_unvoiced = 0
        if announce:
            events.append(SpeechStart(self.track, first, detected_at, start, _EMPTY))

    def _append(self, frame: PCM, events: list[VadEvent]) -> None:
        self._parts.append(frame)
        self._length += len(frame)
        if self.emit_audio:
            pos = self._start + self._length - len(frame)
            last = events[-1] if events else None
            if isinstance(last, SpeechAudio) and last.position + len(last.samples) == pos:
                events[-1] = SpeechAudio(
                    self.track, last.position, np.concatenate([last.samples, frame])
                )
            else:
                events.append(SpeechAudio(self.track, pos, frame))

    def _joined(self) -> PCM:
        if not self.keep_audio or not self._parts:
            return _EMPTY
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts)]
        return self._parts[0]

    def _end(self, events: list[VadEvent], *, at: int, cut: bool) -> None:
        self.in_speech = False
        start = self._start
        end = at if cut else min(at, self._last_voiced_end + self._n_pad * self._fs)
        end = max(end, start)
        kept = self._voiced_samples >= self._min_speech
        events.append(SpeechEnd(self.track, start, end, kept))
        if kept and self.keep_audio:
            audio = self._joined()[: end - start]
            events.append(
                Utterance(self.track, audio, self.sample_rate, start, end, self._index, cut)
            )
            self._index += 1
        self._parts = []
        self._length = 0
        self._window.clear()
        self._window_unvoiced = 0
