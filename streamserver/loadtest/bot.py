"""The bot profile: the conversation every simulated call holds with a bot-like server.

The server under test talks first and stops talking when the caller speaks (barge-in).
streamserver does that with the ``player`` handler: a prompt when the stream starts, the
same prompt again on a DTMF digit, ``clearAudio`` when its VAD hears the caller. The
caller's side is a script of *turns*, the same for every call:

- turn ``j`` begins at frame ``j x turn_frames`` from the stream's start: turn 0 with the
  start itself (the bot greets), every later turn with the caller pressing ``digit``
  (the bot answers it with the prompt again);
- the caller is silent until ``speech_at_s`` into the turn, then says ``speech_s`` of the
  ``--audio`` file's speech (from its first loud 20 ms) and is silent again;
- the prompt (generated here, a voice-like buzz) lasts ``prompt_s``: past the caller's
  speech, so there is something to interrupt, and over before the next turn.

The generator knows the frame at which every speech burst starts (:meth:`BotScript.onset`),
so barge-in latency is the time from sending that frame to receiving the server's clear.
Everything here is pure (numpy only, no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import PCM

__all__ = ["BotScript", "caller_turn", "prompt_audio", "speech_start"]

_FRAME_S = 0.020
#: A 20 ms frame louder than this (RMS, dBFS) is where the speech starts.
_SPEECH_DBFS = -40.0
#: Silence the server's VAD needs after the speech to end the utterance (the player's
#: detector uses the transcriber's 500 ms hangover), before the next turn begins.
_HANGOVER_S = 0.5


@dataclass(frozen=True)
class BotScript:
    """Timing of the bot profile's turns (see the module docstring); seconds."""

    turn_s: float = 6.0
    speech_at_s: float = 2.0
    speech_s: float = 1.2
    prompt_s: float = 4.0
    #: The DTMF digit that starts every turn after the first.
    digit: str = "1"

    def __post_init__(self) -> None:
        if not 0 < self.speech_at_s < self.prompt_s < self.turn_s:
            raise ValueError("the bot script needs 0 < speech_at_s < prompt_s < turn_s")
        if self.speech_s < 0.2 or self.speech_at_s + self.speech_s + _HANGOVER_S > self.turn_s:
            raise ValueError(
                "the caller's speech must last >= 0.2 s and end "
                f"{_HANGOVER_S:g} s before the next turn"
            )

    @property
    def turn_frames(self) -> int:
        """Frames per turn."""
        return round(self.turn_s / _FRAME_S)

    @property
    def onset_frame(self) -> int:
        """The frame of a turn at which the caller starts speaking."""
        return round(self.speech_at_s / _FRAME_S)

    def turn_start(self, turn: int) -> int:
        """The stream's frame index at which ``turn`` begins."""
        return turn * self.turn_frames

    def onset(self, turn: int) -> int:
        """The stream's frame index at which the caller starts speaking in ``turn``."""
        return turn * self.turn_frames + self.onset_frame


def speech_start(pcm: PCM, rate: int) -> int:
    """The first sample of the first 20 ms frame of ``pcm`` louder than -40 dBFS; raises
    ValueError when there is none (the file holds no speech)."""
    fs = round(rate * _FRAME_S)
    n = pcm.shape[0] // fs
    if n:
        frames = pcm[: n * fs].astype(np.float64).reshape(n, fs) / 32768.0
        rms = np.sqrt(np.mean(frames * frames, axis=1))
        loud = np.flatnonzero(rms > 10 ** (_SPEECH_DBFS / 20))
        if loud.size:
            return int(loud[0]) * fs
    raise ValueError(f"no speech in the caller audio (no 20 ms louder than {_SPEECH_DBFS:g} dBFS)")


def caller_turn(speech: PCM, rate: int, script: BotScript) -> PCM:
    """One turn of the caller's audio at ``rate``: silence, ``script.speech_s`` of
    ``speech`` from its first loud frame (a 10 ms fade-out at the cut), silence; whole
    20 ms frames, ``script.turn_frames`` of them."""
    fs = round(rate * _FRAME_S)
    start = speech_start(speech, rate)
    words = speech[start : start + round(script.speech_s * rate)].astype(np.float64)
    fade = min(words.shape[0], round(0.010 * rate))
    if fade:
        words[-fade:] *= np.linspace(1.0, 0.0, fade)
    out = np.zeros(script.turn_frames * fs, dtype=np.int16)
    at = script.onset_frame * fs
    out[at : at + words.shape[0]] = np.round(words).astype(np.int16)
    return out


def prompt_audio(seconds: float, rate: int) -> PCM:
    """The bot's prompt: a voice-like buzz (a 130-170 Hz glottal tone with falling
    harmonics, four syllables a second with short pauses) at about -18 dBFS. Deterministic;
    only its length and loudness matter to the measurement."""
    n = round(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    f0 = 150.0 + 20.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    tone = sum(np.sin(h * phase) / h for h in range(1, 9))
    syllable = np.clip(np.sin(2 * np.pi * 4.0 * t) * 1.25, 0.0, 1.0)  # 4 per second
    pcm = tone * syllable
    peak = float(np.max(np.abs(pcm))) if n else 1.0
    return np.round(pcm / peak * 0.3 * 32767).astype(np.int16)
