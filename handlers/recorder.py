"""``recorder``: writes every track of a stream to disk, sample-exact.

Files: ``{record_dir}/{call_id}/{stream_id}.{track}.wav`` (one mono file per track) or, with
``layout = "stereo"``, ``{stream_id}.wav`` with inbound left and outbound right, aligned by
sample position. A ``{stream_id}.json`` sidecar holds ids, format, times and counts.

The file holds exactly the decoded audio received, in order; gaps (missing chunks, or
audio this handler had to drop when it fell behind) are filled with silence of the exact
length so positions stay true. Writes run on one background thread (never on the event
loop) and are flushed at least every ``flush_interval_s``: after a ``kill -9`` the files are
readable and miss at most about that much audio.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import soundfile as sf

from streamserver.audio import ENCODING_L16, ENCODING_MULAW, silence_bytes, ulaw_decode
from streamserver.audio import decode as audio_decode
from streamserver.audio import encode as audio_encode
from streamserver.handler import (
    AudioChunk,
    Gap,
    Handler,
    HandlerFailure,
    StopReason,
    StreamContext,
)

from .recorddir import HEALTH, describe, probe
from .wavfile import BIG_ENDIAN, SILENCE_PIECE, WavWriter, update_header

__all__ = ["Recorder", "RecorderOptions"]

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _writer() -> ThreadPoolExecutor:
    # One writer thread for the process keeps each file's writes in order and disk I/O off
    # the event loop.
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder-writer")
        return _executor


class _DiskWriter:
    """Collects every recorder's buffered audio once per interval and writes it on the
    writer thread: a few timers and thread hand-offs per second for the whole process,
    instead of a wake-up, a future and a coroutine per stream.

    The recorders are spread over ``SLICES`` slices, one flushed every
    ``interval_s / SLICES``: each is still flushed once per interval, and the work (on the
    loop, and the writer thread's share of the GIL) comes in small pieces, not one burst
    that would stall every stream at once.
    """

    SLICES = 10
    _by_key: dict[tuple[int, float], _DiskWriter] = {}  # noqa: RUF012 - process registry

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float) -> None:
        self.loop = loop
        self.interval_s = interval_s
        self.slices: list[set[Recorder]] = [set() for _ in range(self.SLICES)]
        self.where: dict[Recorder, int] = {}
        self.turn = 0
        self.handle: asyncio.TimerHandle | None = None

    @classmethod
    def get(cls, interval_s: float) -> _DiskWriter:
        loop = asyncio.get_running_loop()
        key = (id(loop), interval_s)
        w = cls._by_key.get(key)
        if w is None or w.loop is not loop:
            w = cls._by_key[key] = _DiskWriter(loop, interval_s)
        return w

    def add(self, rec: Recorder) -> None:
        # Into the emptiest slice, which is the next to be flushed among equals: a new
        # recording is flushed within one interval, like every other.
        k = min(
            range(self.SLICES), key=lambda i: (len(self.slices[i]), (i - self.turn) % self.SLICES)
        )
        self.slices[k].add(rec)
        self.where[rec] = k
        if self.handle is None:
            self.handle = self.loop.call_later(self.interval_s / self.SLICES, self._tick)

    def remove(self, rec: Recorder) -> None:
        k = self.where.pop(rec, None)
        if k is not None:
            self.slices[k].discard(rec)

    def _tick(self) -> None:
        self.handle = None
        if not self.where:
            return
        self.handle = self.loop.call_later(self.interval_s / self.SLICES, self._tick)
        due = self.slices[self.turn]
        self.turn = (self.turn + 1) % self.SLICES
        jobs = []
        for rec in due:
            batches = rec._collect(final=False)
            if batches:
                jobs.append((rec, batches))
        if jobs:
            self.loop.run_in_executor(_writer(), _write_jobs, jobs)


def _write_jobs(jobs: list[tuple[Recorder, dict[str, Any]]]) -> None:
    # On the writer thread. One recorder's failure (disk full...) must not stop the others.
    for rec, batches in jobs:
        try:
            rec._write(batches)
        except Exception as exc:
            rec._write_error = exc
            if isinstance(exc, OSError):
                HEALTH.failed(rec._root, exc)
        else:
            HEALTH.ok(rec._root)


class RecordingError(HandlerFailure):
    """Writing a recording failed (disk full, permissions...); the recorder stops (one log
    line per stream, no traceback)."""


class RecorderOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[handler.recorder]`` options."""

    record_dir: str = "recordings"
    format: Literal["wav", "flac"] = "wav"
    #: Keep G.711 μ-law encoding in the WAV for μ-law streams (half the size, lossless).
    keep_mulaw: bool = False
    layout: Literal["mono", "stereo"] = "mono"
    flush_interval_s: float = 1.0
    write_sidecar: bool = True

    def __post_init__(self) -> None:
        if self.keep_mulaw and self.format == "flac":
            raise ValueError("keep_mulaw needs format = 'wav' (FLAC stores only PCM)")
        if self.flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be > 0")


class _Track:
    __slots__ = ("buffered", "chunks", "filled", "path", "pos", "written")

    def __init__(self) -> None:
        self.chunks: list[Any] = []  # bytes (raw mode) or int16 arrays
        self.buffered = 0
        self.pos = 0  # next sample position expected
        self.written = 0  # samples handed to the writer
        self.filled = 0  # silence samples inserted for gaps
        self.path = ""


class Recorder(Handler):
    """Records each track to WAV/FLAC with a JSON sidecar."""

    Options = RecorderOptions

    def __init__(self, ctx: StreamContext, options: Any = None) -> None:
        super().__init__(ctx, options or RecorderOptions())
        self.opts: RecorderOptions = self.options
        self._tracks: dict[str, _Track] = {t: _Track() for t in ctx.tracks}
        self._files: dict[str, Any] = {}  # sf.SoundFile or WavWriter
        self._stereo = self.opts.layout == "stereo" and len(ctx.tracks) == 2
        # Raw mode (mono WAV, the default): keep the payload bytes as received and decode,
        # if at all, once per flush on the writer thread; FLAC and stereo go through
        # soundfile with decoded samples.
        self._raw = opts_raw = not self._stereo and self.opts.format == "wav"
        self._encoding = ctx.format.encoding
        self._bps = ctx.format.bytes_per_sample
        self._raw_ulaw_out = opts_raw and self._encoding == ENCODING_MULAW and self.opts.keep_mulaw
        self._write_error: Exception | None = None
        self._write_error_reported = False
        self._started_at = time.time()
        self._gaps = 0
        self._root = Path(self.opts.record_dir).resolve()
        self._dir = self._root / ctx.call_id
        self._sidecar = self._dir / f"{ctx.stream_id}.json"

    # -- start-up and readiness ------------------------------------------------------------

    @classmethod
    def preflight(cls, options: Any) -> None:
        """Refuse to start when ``record_dir`` cannot be created and written."""
        opts: RecorderOptions = options or RecorderOptions()
        directory = Path(opts.record_dir).resolve()
        try:
            probe(directory)
        except OSError as exc:
            raise HandlerFailure(
                f"record_dir {str(directory)!r} cannot be written: {describe(exc)} "
                "(create it or fix its permissions, or pick another with --record-dir "
                "or [handler.recorder] record_dir)"
            ) from None

    @classmethod
    def unready(cls, options: Any) -> str | None:
        """The record dir's problem while writes there fail (re-probed every few seconds)."""
        opts: RecorderOptions = options or RecorderOptions()
        return HEALTH.problem(Path(opts.record_dir).resolve(), _writer().submit)

    # -- hooks -----------------------------------------------------------------------------

    async def on_start(self) -> None:
        if self.opts.layout == "stereo" and not self._stereo:
            self.ctx.logger.info("stereo layout needs two tracks; recording mono")
        try:
            await self._run(self._open)
        except OSError as exc:
            self._write_error = exc
            HEALTH.failed(self._root, exc)
            self._raise_write_error()
        _DiskWriter.get(self.opts.flush_interval_s).add(self)

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        # Inline on the receive path: only buffering here; a process-wide timer hands the
        # buffers to the writer thread (see _DiskWriter).
        if self._write_error is not None:
            self._raise_write_error()
        tr = self._tracks.get(chunk.track)
        if tr is None:
            return
        if chunk.position > tr.pos:
            self._silence(tr, chunk.position - tr.pos)
        n = chunk.num_samples
        skip = tr.pos - chunk.position  # > 0: overlap, keep what was recorded first
        if self._raw and chunk.payload is not None and chunk.encoding == self._encoding:
            data: Any = chunk.payload
            if skip > 0:
                data = data[skip * self._bps :]
        else:
            data = chunk.samples
            if skip > 0:
                data = data[skip:]
            if self._raw:
                data = audio_encode(data, self._encoding)
        if skip > 0:
            n -= skip
        if n > 0:
            tr.chunks.append(data)
            tr.buffered += n
            tr.pos += n

    def _raise_write_error(self) -> None:
        exc = self._write_error
        self._write_error_reported = True
        self.count("write_errors")
        why = describe(exc) if isinstance(exc, OSError) else str(exc)
        raise RecordingError(
            f"recording in {self._dir} failed: {why}; this stream is no longer recorded "
            "(check free disk space and permissions of record_dir)"
        ) from None

    async def on_event(self, event: object) -> None:
        if type(event) is Gap:
            tr = self._tracks.get(event.track)
            self._gaps += 1
            if tr is not None and event.position + event.samples > tr.pos:
                self._silence(tr, event.position + event.samples - tr.pos)

    async def on_stop(self, reason: StopReason) -> None:
        _DiskWriter.get(self.opts.flush_interval_s).remove(self)
        try:
            if self._files and self._write_error is None:
                batches = self._collect(final=True)
                if batches:
                    await self._run(self._write, batches)
            await self._run(self._close, reason)
        except OSError as exc:  # expected (disk full, unmounted): one line, no traceback
            if self._write_error is None:
                self._write_error = exc
                HEALTH.failed(self._root, exc)
            await self._run(self._close_quietly)
        if self._write_error is None:
            self.ctx.logger.info(
                "recorded %s (%.1fs, %d gap samples filled)",
                ", ".join(tr.path for tr in self._tracks.values() if tr.path) or "-",
                max((tr.pos for tr in self._tracks.values()), default=0) / self.ctx.sample_rate,
                sum(tr.filled for tr in self._tracks.values()),
            )
            if self.opts.write_sidecar:
                # For whoever ships finished recordings (the service's storage upload).
                self.publish("recording.finished", {"sidecar": str(self._sidecar)})
        elif not self._write_error_reported:
            self._raise_write_error()

    # -- internals -------------------------------------------------------------------------

    def _silence(self, tr: _Track, n: int) -> None:
        # Mono files keep a gap as its sample count: the writer thread writes it in pieces
        # of at most SILENCE_PIECE samples, so no gap is ever held in memory whole.
        # Stereo blocks are interleaved as arrays (gaps there are bounded by the session's
        # max_gap_s and this handler's queue).
        if self._stereo:
            tr.chunks.append(np.zeros(n, dtype=np.int16))
        else:
            tr.chunks.append(n)
        tr.buffered += n
        tr.pos += n
        tr.filled += n

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(_writer(), fn, *args)

    def _collect(self, final: bool) -> dict[str, Any]:
        """Hand over what is buffered: lists of arrays per mono file (joined on the writer
        thread), or the aligned stereo block."""
        batches: dict[str, Any] = {}
        if self._stereo:
            a, b = (self._tracks[t] for t in ("inbound", "outbound"))
            n = max(a.buffered, b.buffered) if final else min(a.buffered, b.buffered)
            if n:
                batches["stereo"] = np.stack([self._take(a, n), self._take(b, n)], axis=1)
        else:
            for name, tr in self._tracks.items():
                if tr.buffered:
                    batches[name] = tr.chunks
                    tr.chunks = []
                    tr.written += tr.buffered
                    tr.buffered = 0
        return batches

    @staticmethod
    def _take(tr: _Track, n: int) -> np.ndarray:
        """Take exactly ``n`` buffered samples (zero-padded at the end of the stream)."""
        data = np.concatenate(tr.chunks) if tr.chunks else np.zeros(0, dtype=np.int16)
        out, rest = data[:n], data[n:]
        if len(out) < n:
            out = np.concatenate([out, np.zeros(n - len(out), dtype=np.int16)])
        tr.chunks = [rest] if len(rest) else []
        tr.buffered = len(rest)
        tr.written += n
        return out

    # -- writer thread -----------------------------------------------------------------------

    def _open(self) -> None:
        ctx, opts = self.ctx, self.opts
        self._dir.mkdir(parents=True, exist_ok=True)
        ext = opts.format
        subtype = "PCM_16"
        if opts.keep_mulaw and ctx.format.encoding == ENCODING_MULAW:
            subtype = "ULAW"
        fmt = "WAV" if ext == "wav" else "FLAC"
        targets = {"stereo": 2} if self._stereo else {t: 1 for t in ctx.tracks}
        for key, channels in targets.items():
            name = f"{ctx.stream_id}.{ext}" if key == "stereo" else f"{ctx.stream_id}.{key}.{ext}"
            path = self._dir / name
            if path.resolve().parent != self._dir:  # ids are validated upstream; belt and braces
                raise ValueError(f"refusing to write outside {self._dir}: {name!r}")
            if self._raw:
                self._files[key] = WavWriter(
                    path, ctx.sample_rate, "ulaw" if self._raw_ulaw_out else "pcm16"
                )
            else:
                self._files[key] = sf.SoundFile(
                    str(path),
                    "w",
                    samplerate=ctx.sample_rate,
                    channels=channels,
                    format=fmt,
                    subtype=subtype,
                )
            for t in ("inbound", "outbound") if key == "stereo" else (key,):
                if t in self._tracks:
                    self._tracks[t].path = str(path)
        self._write_sidecar(None)

    def _write(self, batches: dict[str, Any]) -> None:
        for key, data in batches.items():
            f = self._files.get(key)
            if f is None:
                continue
            if type(data) is not list:  # a stereo block
                f.write(data)
                update_header(f)
                continue
            run: list[Any] = []  # audio between two gaps, joined into one write
            for item in data:
                if type(item) is not int:
                    run.append(item)
                    continue
                if run:
                    self._write_audio(f, run)
                    run = []
                while item > 0:
                    k = min(item, SILENCE_PIECE)
                    if self._raw:
                        self._write_audio(f, [silence_bytes(self._encoding, k)])
                    else:
                        self._write_audio(f, [np.zeros(k, dtype=np.int16)])
                    item -= k
            if run:
                self._write_audio(f, run)
            if not self._raw:
                update_header(f)

    def _write_audio(self, f: Any, data: list[Any]) -> None:
        if self._raw:
            raw = b"".join(data)
            if self._encoding == ENCODING_MULAW and not self._raw_ulaw_out:
                raw = ulaw_decode(raw).astype("<i2", copy=False).tobytes()
            elif self._encoding not in (ENCODING_MULAW, ENCODING_L16):
                # A-law, big-endian L16 (Telnyx): decoded once per flush, on this thread.
                raw = audio_decode(raw, self._encoding).astype("<i2", copy=False).tobytes()
            elif self._encoding != ENCODING_MULAW and BIG_ENDIAN:  # pragma: no cover
                raw = np.frombuffer(raw, "<i2").astype(np.int16).tobytes()
            f.write(raw)
        else:
            f.write(np.concatenate(data) if len(data) > 1 else data[0])

    def _close(self, reason: StopReason) -> None:
        files, self._files = self._files, {}
        for f in files.values():
            f.close()
        self._write_sidecar(reason)

    def _close_quietly(self) -> None:
        files, self._files = self._files, {}
        for f in files.values():
            try:
                f.close()
            except (OSError, RuntimeError):
                pass

    def _write_sidecar(self, reason: StopReason | None) -> None:
        if not self.opts.write_sidecar:
            return
        ctx = self.ctx
        rate = ctx.sample_rate
        doc = {
            "call_id": ctx.call_id,
            "stream_id": ctx.stream_id,
            "account_id": ctx.account_id,
            "route": ctx.route,
            "format": {"encoding": ctx.format.encoding, "sample_rate": rate},
            "tracks": list(ctx.tracks),
            "layout": "stereo" if self._stereo else "mono",
            "files": {t: tr.path for t, tr in self._tracks.items()},
            "extra_headers": ctx.extra_headers,
            "start_time": _iso(self._started_at),
            "end_time": _iso(time.time()) if reason is not None else None,
            "stop_reason": reason.value if reason is not None else None,
            "samples": {t: tr.pos for t, tr in self._tracks.items()},
            "duration_s": {t: round(tr.pos / rate, 3) for t, tr in self._tracks.items()},
            "gaps": self._gaps,
            "gap_samples_filled": {t: tr.filled for t, tr in self._tracks.items()},
            "stream": self.ctx.stats(),
        }
        tmp = self._sidecar.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self._sidecar)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
