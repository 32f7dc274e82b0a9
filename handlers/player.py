"""``player``: talks back into the call: prompts on start and on DTMF, with barge-in.

A prompt is an audio file (WAV, FLAC, OGG: what libsndfile reads) given as a path or an
``http(s)://`` URL. It is decoded, mixed to mono and resampled to the stream's rate once
(then cached), and sent with ``playAudio`` through the stream context, followed by a
checkpoint every ``checkpoint_every_s`` of audio: the provider confirms each checkpoint when
the audio before it has really been played, so the player knows how much the caller heard.

**Barge-in**: while a prompt plays, speech from the caller (the inbound track) stops it. The
player runs its own WebRTC VAD on the inbound audio (``barge_in = "vad"``), or reacts to the
``speech.start`` events a transcriber publishes (``"transcriber"``), or both. It then sends
``clearAudio``; the checkpoints queued before the clear resolve as not played.

Bus events (a :class:`PlayerEvent` each): ``player.started``, ``player.finished`` (every
checkpoint played), ``player.interrupted`` (``reason`` is ``"speech"``, ``"dtmf"`` or
``"hangup"``; ``played_s`` is what the checkpoints confirm), ``player.failed`` (the prompt
could not be loaded).
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections import OrderedDict
from typing import Any, Literal

import httpx
import msgspec
import soundfile as sf

from handlers.transcribe.events import SpeechStarted
from handlers.transcribe.vad import Segmenter, SpeechStart, VadOptions
from streamserver import audio
from streamserver.handler import AudioChunk, BusEvent, Handler, StopReason, StreamContext
from streamserver.protocol.events import DTMF_DIGITS, ClearedAudio, Dtmf

__all__ = ["Player", "PlayerEvent", "PlayerOptions", "PromptError", "load_prompt"]

_DTMF_KEYS = frozenset(DTMF_DIGITS)


class PlayerOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[handler.player]`` options."""

    #: Played when the stream starts ("" = nothing): a file path or an http(s) URL.
    prompt: str = ""
    #: DTMF digit -> prompt, e.g. {"1" = "prompts/sales.wav"}.
    on_dtmf: dict[str, str] = msgspec.field(default_factory=dict)
    #: What stops a playing prompt when the caller speaks.
    barge_in: Literal["off", "vad", "transcriber", "both"] = "vad"
    #: Any DTMF digit stops the playing prompt (a mapped digit then plays its own).
    interrupt_on_dtmf: bool = True
    #: A checkpoint after every this much audio: the resolution of ``played_s``.
    checkpoint_every_s: float = 1.0
    #: Longer prompts are refused.
    max_prompt_s: float = 300.0
    #: Timeout for fetching a prompt URL.
    fetch_timeout_s: float = 10.0
    #: Decoded prompts kept in memory for the whole process (0 = load every time).
    cache_prompts: int = 32
    # The barge-in detector (``barge_in = "vad"`` or ``"both"``): WebRTC VAD mode 0-3,
    # speech needed within this window to count as barge-in, and the energy floor below
    # which a frame is never speech (higher than the transcriber's: faint line noise or
    # an echo of the prompt must not stop it). Mode 3 reacts later to soft word onsets.
    vad_aggressiveness: int = 2
    vad_start_ms: int = 100
    vad_energy_floor_dbfs: float = -45.0

    def __post_init__(self) -> None:
        for key in self.on_dtmf:
            if len(key) != 1 or key not in _DTMF_KEYS:
                raise ValueError(f"on_dtmf key {key!r} is not a DTMF digit (0-9 * # A-D)")
        for source in (self.prompt, *self.on_dtmf.values()):
            if source and not _is_url(source) and not os.path.isfile(source):
                raise ValueError(f"prompt file {source!r} not found")
        if self.checkpoint_every_s <= 0 or self.max_prompt_s <= 0 or self.fetch_timeout_s <= 0:
            raise ValueError("checkpoint_every_s, max_prompt_s, fetch_timeout_s must be > 0")
        if self.cache_prompts < 0:
            raise ValueError("cache_prompts must be >= 0")
        self.vad()  # validates the vad_* values

    def vad(self) -> VadOptions:
        """The barge-in detector's settings."""
        try:
            return VadOptions(
                aggressiveness=self.vad_aggressiveness,
                start_ms=self.vad_start_ms,
                energy_floor_dbfs=self.vad_energy_floor_dbfs,
            )
        except ValueError as exc:
            raise ValueError(f"vad_{exc}") from None


class PlayerEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Payload of the ``player.*`` bus events.

    ``played_s`` is the audio confirmed played by checkpoints (a lower bound, at
    ``checkpoint_every_s`` resolution); ``detected_sample`` is the inbound sample position
    at which barge-in speech was recognised.
    """

    prompt: str
    id: int
    duration_s: float
    played_s: float = 0.0
    reason: str = ""
    detected_sample: int | None = None
    error: str = ""


class PromptError(Exception):
    """A prompt could not be fetched or decoded."""


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


# --- prompt loading ----------------------------------------------------------------------------

_cache: OrderedDict[tuple[str, int, float], audio.PCM] = OrderedDict()
_cache_lock = threading.Lock()


def _decode(data: bytes | str, rate: int, max_s: float, source: str) -> audio.PCM:
    """File bytes (or a path) -> int16 mono at ``rate``. Runs in a thread."""
    try:
        with sf.SoundFile(io.BytesIO(data) if isinstance(data, bytes) else data) as f:
            if f.frames > max_s * f.samplerate:
                raise PromptError(
                    f"prompt {source!r} is {f.frames / f.samplerate:.1f} s long "
                    f"(max_prompt_s = {max_s:g})"
                )
            pcm = f.read(dtype="float32", always_2d=True)
            src_rate = f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise PromptError(f"prompt {source!r} cannot be decoded: {exc}") from exc
    mono = audio.to_int16(pcm.mean(axis=1))
    return audio.resample(mono, src_rate, rate) if src_rate != rate else mono


async def load_prompt(
    source: str,
    rate: int,
    *,
    max_s: float = 300.0,
    timeout_s: float = 10.0,
    cache_size: int = 32,
) -> audio.PCM:
    """The prompt at ``source`` (path or URL) as int16 mono at ``rate`` Hz.

    Files are read and decoded in a thread; URLs are fetched with httpx. Results are kept
    in a process-wide LRU cache of ``cache_size`` entries (files are re-read when their
    modification time changes). Raises :class:`PromptError`.
    """
    loop = asyncio.get_running_loop()
    if _is_url(source):
        version = 0.0
    else:
        try:
            version = os.stat(source).st_mtime
        except OSError as exc:
            raise PromptError(f"prompt file {source!r}: {exc.strerror}") from exc
    key = (source, rate, version)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    data: bytes | str = source
    if _is_url(source):
        limit = int(max_s * 48000 * 2 * 2) + 65536  # a generous bound on the file size
        try:
            async with (
                httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as client,
                client.stream("GET", source) as r,
            ):
                if r.status_code != 200:
                    raise PromptError(f"prompt {source!r}: HTTP {r.status_code}")
                chunks = []
                size = 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise PromptError(f"prompt {source!r} is larger than {limit} bytes")
                    chunks.append(chunk)
                data = b"".join(chunks)
        except httpx.HTTPError as exc:
            raise PromptError(f"prompt {source!r}: {type(exc).__name__}: {exc}") from exc
    pcm = await loop.run_in_executor(None, _decode, data, rate, max_s, source)
    pcm.flags.writeable = False
    if cache_size:
        with _cache_lock:
            _cache[key] = pcm
            while len(_cache) > cache_size:
                _cache.popitem(last=False)
    return pcm


# --- the handler -------------------------------------------------------------------------------


class _Playing:
    __slots__ = (
        "checkpoints",
        "detected",
        "duration_s",
        "id",
        "prompt",
        "reason",
        "task",
        "why",
    )

    def __init__(self, prompt: str, id: int, duration_s: float) -> None:
        self.prompt = prompt
        self.id = id
        self.duration_s = duration_s
        self.checkpoints: list[tuple[asyncio.Future[bool], float]] = []
        self.reason = ""
        self.detected: int | None = None
        self.task: asyncio.Task[None] | None = None
        # Resolved with the reason when audio was dropped by something else than us.
        self.why: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def explain(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
        if not self.why.done():
            self.why.set_result(self.reason)


class Player(Handler):
    """Plays prompts on start and on DTMF; stops them when the caller speaks."""

    Options = PlayerOptions

    def __init__(self, ctx: StreamContext, options: Any = None) -> None:
        super().__init__(ctx, options or PlayerOptions())
        self.opts: PlayerOptions = self.options
        self._active = ctx.bidirectional
        self._seq = 0
        self._playing: list[_Playing] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._detector: Segmenter | None = None
        if self.opts.barge_in in ("vad", "both") and "inbound" in ctx.tracks:
            self._detector = Segmenter(ctx.sample_rate, self.opts.vad(), keep_audio=False)
        self._bus_barge_in = self.opts.barge_in in ("transcriber", "both")

    @property
    def playing(self) -> bool:
        """A prompt has been sent and not all of it is known to be played or cleared."""
        return bool(self._playing)

    # -- hooks ---------------------------------------------------------------------------------

    async def on_start(self) -> None:
        if not self._active:
            self.ctx.logger.warning(
                "player needs a bidirectional route; nothing will be played on %s", self.ctx.route
            )
            return
        if self.opts.prompt:
            await self.play(self.opts.prompt)

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        # Inline on the receive path (a few µs per frame): barge-in reacts to the very
        # frame that completes the detection, with no queue in between.
        det = self._detector
        if det is None or chunk.track != "inbound":
            return
        # Always fed, so its state is current the moment a prompt starts.
        for e in det.push(chunk.samples, chunk.position):
            if type(e) is SpeechStart and self.playing:
                assert isinstance(e, SpeechStart)
                self.interrupt("speech", detected_sample=e.detected_at)

    async def on_dtmf(self, dtmf: Dtmf) -> None:
        if not self._active:
            return
        source = self.opts.on_dtmf.get(dtmf.digit)
        if self.opts.interrupt_on_dtmf and self.playing:
            self.interrupt("dtmf")
        if source:
            await self.play(source)

    async def on_event(self, event: Any) -> None:
        if type(event) is ClearedAudio:
            for p in self._playing:
                p.explain("cleared")  # by another handler, when not by us
            return
        if (
            self._bus_barge_in
            and type(event) is BusEvent
            and event.topic == "speech.start"
            and isinstance(event.data, SpeechStarted)
            and event.data.track == "inbound"
            and self.playing
        ):
            self.interrupt("speech", detected_sample=event.data.detected_sample)

    async def on_stop(self, reason: StopReason) -> None:
        for p in self._playing:
            p.explain("hangup")
        # The session resolved every pending checkpoint when the stream ended.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    # -- playing -------------------------------------------------------------------------------

    async def play(self, source: str) -> None:
        """Load ``source`` and play it (after whatever is still playing)."""
        ctx, o = self.ctx, self.opts
        self._seq += 1
        pid = self._seq
        try:
            pcm = await load_prompt(
                source,
                ctx.sample_rate,
                max_s=o.max_prompt_s,
                timeout_s=o.fetch_timeout_s,
                cache_size=o.cache_prompts,
            )
        except PromptError as exc:
            ctx.logger.warning("player: %s", exc)
            self.publish(
                "player.failed", PlayerEvent(prompt=source, id=pid, duration_s=0.0, error=str(exc))
            )
            return
        rate = ctx.sample_rate
        playing = _Playing(source, pid, round(len(pcm) / rate, 3))
        step = max(ctx.format.frame_samples, int(o.checkpoint_every_s * rate))
        for i, at in enumerate(range(0, len(pcm), step)):
            part = pcm[at : at + step]
            await ctx.play(part, rate)
            fut = ctx.checkpoint(f"player-{pid}-{i}")
            playing.checkpoints.append((fut, len(part) / rate))
        # Plays after whatever is still playing (the provider queues it); an interrupt
        # clears both.
        self._playing.append(playing)
        playing.task = task = asyncio.create_task(self._watch(playing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.publish(
            "player.started", PlayerEvent(prompt=source, id=pid, duration_s=playing.duration_s)
        )
        ctx.logger.info("player: playing %s (%.1fs)", source, playing.duration_s)

    def interrupt(self, reason: str, *, detected_sample: int | None = None) -> None:
        """Stop what is playing now: ``clearAudio``; unplayed checkpoints resolve False."""
        if not self._playing:
            return
        for p in self._playing:
            if not p.reason:
                p.detected = detected_sample
            p.explain(reason)
        self.ctx.clear()
        self.ctx.logger.info(
            "player: %s interrupted (%s)%s",
            ", ".join(p.prompt for p in self._playing),
            reason,
            f" at {detected_sample / self.ctx.sample_rate:.2f}s" if detected_sample else "",
        )

    async def _watch(self, playing: _Playing) -> None:
        """Follow the checkpoints of one prompt and publish how it ended."""
        played = 0.0
        complete = True
        try:
            for fut, seconds in playing.checkpoints:
                if not await fut:
                    complete = False
                    break
                played += seconds
            if not complete:
                # Unplayed, and not by our interrupt: the reason (another handler's clear,
                # or the end of the stream) arrives as an event; wait for it.
                await playing.why
        finally:
            self._playing.remove(playing)
        event = PlayerEvent(
            prompt=playing.prompt,
            id=playing.id,
            duration_s=playing.duration_s,
            played_s=round(played, 3),
            reason="" if complete else playing.reason,
            detected_sample=playing.detected,
        )
        if complete:
            self.publish("player.finished", event)
        else:
            self.publish("player.interrupted", event)
