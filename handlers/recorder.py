"""``recorder``: writes every track of a stream to disk, sample-exact.

Files: ``{record_dir}/{call_id}/{stream_id}.{track}.wav`` (one mono file per track) or, with
``layout = "stereo"``, ``{stream_id}.wav`` with inbound left and outbound right, aligned by
sample position. A ``{stream_id}.json`` sidecar holds ids, format, times and counts.

The file holds exactly the decoded audio received, in order; gaps (missing chunks, or
audio this handler had to drop when it fell behind) are filled with silence of the exact
length so positions stay true. Writes run on one background thread (never on the event
loop) and are flushed at least every ``flush_interval_s``: after a ``kill -9`` the files are
readable and miss at most about that much audio. The files themselves:
:mod:`handlers.recordfiles`.

A write that fails (a full disk, a vanished volume) ends the recording of that stream and
leaves it consistent: each WAV file's header counts exactly the samples it holds, and the
sidecar is finalized with the end time, those sample counts and the ``error``. While the
record dir keeps failing, new streams are not recorded at all (no files are created) and
``/readyz`` says why; on a route with ``required_handlers = ["recorder"]`` such a stream is
closed with 1011 "recording storage full". The first stream after a probe of the directory
passes is recorded again.

With ``heard = true`` a bidirectional stream also gets the track ``heard``, what the caller
heard (:mod:`handlers.heard`; stereo: right channel), and the sidecar lists its prompts. A
stream resumed after a reconnect continues its files: one recording per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from streamserver.audio import ENCODING_MULAW
from streamserver.audio import decode as audio_decode
from streamserver.audio import encode as audio_encode
from streamserver.handler import (
    AudioChunk,
    Gap,
    Handler,
    HandlerFailure,
    PlaybackEvent,
    StopReason,
    StreamContext,
)

from .diskwriter import DiskWriter, writer
from .heard import HeardTrack
from .recorddir import HEALTH, close_reason, describe, probe
from .recordfiles import RecordingFiles
from .sidecar import recording_doc, write_sidecar

__all__ = ["Recorder", "RecorderOptions"]

#: The recording of each stream being written, by sidecar path (and event loop): a resumed
#: stream's recorder waits for the earlier connection's to close its files.
_OPEN: dict[tuple[int, Path], asyncio.Future[None]] = {}
_HANDOVER_TIMEOUT_S = 10.0
#: Played audio no answer placed is settled where the model put it once the caller's track
#: is this far past it (seconds): memory stays bounded without checkpoints (an echo).
_HEARD_HOLD_S = 5


class RecordingError(HandlerFailure):
    """Writing a recording failed (disk full, permissions...); the recorder stops (one log
    line per stream, no traceback). ``error`` is the OS error behind it, when there is one."""

    def __init__(self, message: str, error: BaseException | None) -> None:
        super().__init__(message, close_reason=close_reason(error))
        self.error = error


class RecorderOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[handler.recorder]`` options."""

    record_dir: str = "recordings"
    format: Literal["wav", "flac"] = "wav"
    #: Keep G.711 μ-law encoding in the WAV for μ-law streams (half the size, lossless).
    keep_mulaw: bool = False
    layout: Literal["mono", "stereo"] = "mono"
    flush_interval_s: float = 1.0
    write_sidecar: bool = True
    #: Also record what the caller heard from the server (bidirectional streams): the
    #: track ``heard`` (stereo: right channel, the caller left) and its prompts.
    heard: bool = False

    def __post_init__(self) -> None:
        if self.keep_mulaw and self.format == "flac":
            raise ValueError("keep_mulaw needs format = 'wav' (FLAC stores only PCM)")
        if self.flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be > 0")


class _Track:
    __slots__ = ("buffered", "chunks", "filled", "path", "pos", "written")

    def __init__(self, pos: int = 0) -> None:
        self.chunks: list[Any] = []  # bytes (raw mode) or int16 arrays, ints: silence
        self.buffered = 0
        self.pos = pos  # next sample position expected
        self.written = pos  # samples handed to the writer (a resumed file has them already)
        self.filled = 0  # silence samples inserted for gaps
        self.path = ""


class Recorder(Handler):
    """Records each track to WAV/FLAC with a JSON sidecar."""

    Options = RecorderOptions

    def __init__(self, ctx: StreamContext, options: Any = None) -> None:
        super().__init__(ctx, options or RecorderOptions())
        self.opts: RecorderOptions = self.options
        opts, fmt = self.opts, ctx.format
        self._heard: HeardTrack | None = None
        names = list(ctx.tracks)
        if opts.heard and ctx.bidirectional:
            hold = _HEARD_HOLD_S * fmt.sample_rate
            self._heard = HeardTrack(
                bytes_per_sample=fmt.bytes_per_sample, frame_samples=fmt.frame_samples, hold=hold
            )
            names.append("heard")
        # A resumed stream continues each track where its earlier connection left it (the
        # heard track follows the caller's).
        at = {t: ctx.resumed.get("inbound" if t == "heard" else t, 0) for t in names}
        self._tracks: dict[str, _Track] = {t: _Track(at[t]) for t in names}
        self._pair = pair = (
            ("inbound", "outbound") if len(ctx.tracks) == 2 else ("inbound", "heard")
        )
        self._stereo = opts.layout == "stereo" and all(t in self._tracks for t in pair)
        if self._stereo:  # one file: both channels resume where it ends
            start = max(self._tracks[t].pos for t in pair)
            for t in pair:
                self._tracks[t].pos = self._tracks[t].written = start
        # Raw mode (mono WAV, the default): keep the payload bytes as received and decode,
        # if at all, once per flush on the writer thread; FLAC and stereo go through
        # soundfile with decoded samples.
        self._raw = raw = not self._stereo and opts.format == "wav"
        self._encoding = fmt.encoding
        self._bps = fmt.bytes_per_sample
        mulaw = self._encoding == ENCODING_MULAW and opts.keep_mulaw
        self._write_error: Exception | None = None
        self._write_error_reported = False
        self._opened = False  # files and the first sidecar exist
        self._started_at = time.time()
        self._first_start = ""  # a resumed recording's first connection's start time
        self._gaps = 0
        self._root = Path(opts.record_dir).resolve()
        self._dir = self._root / ctx.call_id
        self._files = RecordingFiles(
            self._dir, ctx.stream_id, rate=ctx.sample_rate, encoding=self._encoding,
            raw=raw, ulaw_out=raw and mulaw, ext=opts.format,
            subtype="ULAW" if mulaw else "PCM_16",
        )  # fmt: skip
        self._sidecar = self._dir / f"{ctx.stream_id}.json"
        loop = asyncio.get_running_loop()
        self._key = (id(loop), self._sidecar)
        self._before = _OPEN.get(self._key)  # an earlier connection's recorder, if any
        self._closed: asyncio.Future[None] = loop.create_future()
        _OPEN[self._key] = self._closed

    @classmethod
    def taps_playback(cls, options: Any) -> bool:
        """With ``heard = true`` the recorder needs what the server plays back."""
        return bool(options is not None and options.heard)

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
        return HEALTH.problem(Path(opts.record_dir).resolve(), writer().submit)

    # -- hooks -----------------------------------------------------------------------------

    async def on_start(self) -> None:
        if self.opts.layout == "stereo" and not self._stereo:
            self.ctx.logger.info("stereo layout needs two tracks; recording mono")
        before, self._before = self._before, None
        if self.ctx.connection > 1 and before is not None and not before.done():
            # The earlier connection's recorder still writes these files: let it finish.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(before), _HANDOVER_TIMEOUT_S)
        if HEALTH.failure(self._root) is not None:
            # The record dir failed lately: probe it (at most once a second) rather than
            # leave empty files behind on a disk that is still full.
            refused = await self._run(HEALTH.recheck, self._root)
            if refused is not None:
                self.count("refused")
                raise RecordingError(
                    f"not recording in {self._dir}: record_dir cannot be written: "
                    f"{describe(refused)} (free disk space or fix record_dir)",
                    refused,
                )
        try:
            await self._run(self._open)
        except OSError as exc:
            self._write_error = exc
            HEALTH.failed(self._root, exc)
            self._raise_write_error()
        self._opened = True
        DiskWriter.get(self.opts.flush_interval_s).add(self)

    def on_audio_nowait(self, chunk: AudioChunk) -> None:
        # Inline on the receive path: only buffering here; a process-wide timer hands the
        # buffers to the writer thread (see DiskWriter).
        if self._write_error is not None:
            self._raise_write_error()
        tr = self._tracks.get(chunk.track)
        if tr is None:
            return
        payload = chunk.payload
        if (
            self._raw
            and payload is not None
            and chunk.position == tr.pos
            and chunk.encoding == self._encoding
        ):  # in order, as received: the per-frame case, inlined
            n = chunk.num_samples
            tr.chunks.append(payload)
            tr.buffered += n
            tr.pos += n
            return
        self._add(tr, chunk.position, chunk.num_samples, None, chunk)

    def on_playback_nowait(self, event: PlaybackEvent) -> None:
        # Inline, in order with the inbound audio: the heard track's positions are final
        # once the provider's answers settle them (handlers.heard).
        heard = self._heard
        if heard is None:
            return
        heard.feed(event.kind, event.position, event.payload, event.name)
        self._take_heard()

    def _take_heard(self) -> None:
        heard = self._heard
        assert heard is not None
        tr = self._tracks["heard"]
        for pos, data in heard.take():
            self._add(tr, pos, len(data) // self._bps, data, None)

    def _add(
        self, tr: _Track, position: int, n: int, payload: bytes | None, chunk: AudioChunk | None
    ) -> None:
        """Buffer ``n`` samples at ``position`` (silence before it; an overlap keeps what
        was recorded first)."""
        if position > tr.pos:
            self._silence(tr, position - tr.pos)
        skip = tr.pos - position  # > 0: overlap, keep what was recorded first
        if chunk is not None and chunk.payload is not None and chunk.encoding == self._encoding:
            payload = chunk.payload
        if self._raw and payload is not None:
            data: Any = payload[skip * self._bps :] if skip > 0 else payload
        else:
            data = (
                chunk.samples if chunk is not None else audio_decode(payload or b"", self._encoding)
            )
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
            "(check free disk space and permissions of record_dir)",
            exc,
        ) from None

    async def on_event(self, event: object) -> None:
        if type(event) is Gap:
            tr = self._tracks.get(event.track)
            self._gaps += 1
            if tr is not None and event.position + event.samples > tr.pos:
                self._silence(tr, event.position + event.samples - tr.pos)

    async def on_stop(self, reason: StopReason) -> None:
        DiskWriter.get(self.opts.flush_interval_s).remove(self)
        try:
            await self._stop(reason)
        finally:
            self._closed.set_result(None)
            if _OPEN.get(self._key) is self._closed:
                del _OPEN[self._key]

    async def _stop(self, reason: StopReason) -> None:
        if not self._opened:
            return  # refused or failed to open: on_start said why, nothing is on disk
        if self._heard is not None:
            self._heard.finish()
            self._take_heard()
        if self._write_error is None:
            batches = self.collect(final=True)
            if batches:
                try:
                    await self._run(self.write_batches, batches)
                except Exception as exc:
                    self.write_failed(exc)
        # Close the files and finalize the sidecar, with the error if there was one.
        finalized = await self._run(self._finish, reason)
        if self._files.short_writes:
            self.count("short_writes", self._files.short_writes)
        if self._write_error is None:
            self.ctx.logger.info(
                "recorded %s (%.1fs, %d gap samples filled)",
                ", ".join(tr.path for tr in self._tracks.values() if tr.path) or "-",
                max((tr.pos for tr in self._tracks.values()), default=0) / self.ctx.sample_rate,
                sum(tr.filled for tr in self._tracks.values()),
            )
        if finalized:
            # For whoever ships finished recordings (the service's storage upload); a
            # recording cut short by a full disk goes too (and frees the spool).
            self.publish("recording.finished", {"sidecar": str(self._sidecar)})
        if self._write_error is not None and not self._write_error_reported:
            self._raise_write_error()

    def write_failed(self, exc: Exception) -> None:
        """Note the first write error (disk full...): the recording ends here (also called
        on the writer thread)."""
        if self._write_error is None:
            self._write_error = exc
        if isinstance(exc, OSError):
            HEALTH.failed(self._root, exc)

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
        return await asyncio.get_running_loop().run_in_executor(writer(), fn, *args)

    def collect(self, final: bool) -> dict[str, Any]:
        """Hand over what is buffered: lists of arrays per mono file (joined on the writer
        thread), or the aligned stereo block."""
        heard = self._tracks.get("heard")
        if heard is not None:
            # Silence where nothing can be placed any more, so the heard track keeps up
            # with the caller's (and the stereo block is not held back).
            assert self._heard is not None
            inbound = self._tracks["inbound"].pos
            self._heard.advance(inbound)
            self._take_heard()
            through = self._heard.settled_through
            upto = inbound if final or through is None else min(through, inbound)
            if upto > heard.pos:
                k = upto - heard.pos
                self._silence(heard, k)
                heard.filled -= k  # the caller heard nothing there: not a gap
        batches: dict[str, Any] = {}
        if self._stereo:
            a, b = (self._tracks[t] for t in self._pair)
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
        ctx = self.ctx
        targets = {"stereo": 2} if self._stereo else {t: 1 for t in self._tracks}
        resume_at: dict[str, int] = {}
        if ctx.connection > 1 and ctx.resumed:
            for key in targets:
                members = self._pair if key == "stereo" else (key,)
                resume_at[key] = max(self._tracks[t].written for t in members)
            self._first_start = self._read_first_start()
        self._files.open(targets, resume_at, ctx.connection)
        for key, path in self._files.paths.items():
            for t in self._pair if key == "stereo" else (key,):
                self._tracks[t].path = str(path)
        try:
            self._write_sidecar(None, reserve=True)
        except BaseException:
            self._files.discard()
            raise

    def _read_first_start(self) -> str:
        try:
            doc = json.loads(self._sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        return str(doc.get("start_time") or "") if isinstance(doc, dict) else ""

    def write_batches(self, batches: dict[str, Any]) -> None:
        """Write what :meth:`collect` handed over (the writer thread); nothing after an
        error (the files stay as the error left them)."""
        if self._write_error is not None:
            return
        self._files.write(batches)
        HEALTH.ok(self._root)

    def _finish(self, reason: StopReason) -> bool:
        """Close the files, then write the final sidecar (with the error, if any); True
        when it was written. Never raises for an OS error: it becomes the recording's."""
        for exc in self._files.close():  # FLAC: the last frames did not fit
            self.write_failed(exc)
        if not self.opts.write_sidecar:
            return False
        try:
            self._write_sidecar(reason)
        except OSError as exc:
            self.write_failed(exc)
            self.ctx.logger.error(
                "sidecar %s could not be finalized: %s", self._sidecar, describe(exc)
            )
            return False
        return True

    def _samples(self) -> dict[str, int]:
        """Samples per track in its file (what the disk took), or received when no file."""
        out = {}
        for t, tr in self._tracks.items():
            key = "stereo" if self._stereo else t
            out[t] = self._files.samples.get(key, tr.pos) if self._write_error else tr.pos
        return out

    def _write_sidecar(self, reason: StopReason | None, *, reserve: bool = False) -> None:
        if not self.opts.write_sidecar:
            return
        prompts = None if self._heard is None else self._heard.prompts
        doc = recording_doc(
            self.ctx,
            stereo=self._stereo,
            tracks={t: (tr.path, tr.pos, tr.filled) for t, tr in self._tracks.items()},
            samples=self._samples(),
            start_time=self._first_start or _iso(self._started_at),
            end_time=_iso(time.time()) if reason is not None else None,
            reason=reason,
            gaps=self._gaps,
            error=self._write_error,
            prompts=[p.to_json(self.ctx.sample_rate) for p in prompts or ()],
        )
        write_sidecar(self._sidecar, doc, reserve=reserve)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
