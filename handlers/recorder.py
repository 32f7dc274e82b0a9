"""``recorder``: writes every track of a stream to disk, sample-exact.

Files: ``{record_dir}/{call_id}/{stream_id}.{track}.wav`` (one mono file per track) or, with
``layout = "stereo"``, ``{stream_id}.wav`` with inbound left and outbound right, aligned by
sample position. A ``{stream_id}.json`` sidecar holds ids, format, times and counts.

The file holds exactly the decoded audio received, in order; gaps (missing chunks, or
audio this handler had to drop when it fell behind) are filled with silence of the exact
length so positions stay true. Writes run on one background thread (never on the event
loop) and are flushed at least every ``flush_interval_s``: after a ``kill -9`` the files are
readable and miss at most about that much audio.

A write that fails (a full disk, a vanished volume) ends the recording of that stream and
leaves it consistent: each WAV file's header counts exactly the samples it holds, and the
sidecar is finalized with the end time, those sample counts and the ``error``. While the
record dir keeps failing, new streams are not recorded at all (no files are created) and
``/readyz`` says why; on a route with ``required_handlers = ["recorder"]`` such a stream is
closed with 1011 "recording storage full". The first stream after a probe of the directory
passes is recorded again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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

from .diskwriter import DiskWriter, writer
from .recorddir import HEALTH, close_reason, describe, probe
from .sidecar import write_sidecar
from .wavfile import BIG_ENDIAN, SILENCE_PIECE, WavWriter, update_header

__all__ = ["Recorder", "RecorderOptions"]


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
        self._opened = False  # files and the first sidecar exist
        #: samples in each file (written and accepted by the disk), by file key
        self._file_samples: dict[str, int] = {}
        self._short_writes = 0
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
        return HEALTH.problem(Path(opts.record_dir).resolve(), writer().submit)

    # -- hooks -----------------------------------------------------------------------------

    async def on_start(self) -> None:
        if self.opts.layout == "stereo" and not self._stereo:
            self.ctx.logger.info("stereo layout needs two tracks; recording mono")
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
        if not self._opened:
            return  # refused or failed to open: on_start said why, nothing is on disk
        if self._write_error is None:
            batches = self.collect(final=True)
            if batches:
                try:
                    await self._run(self.write_batches, batches)
                except Exception as exc:
                    self.write_failed(exc)
        # Close the files and finalize the sidecar, with the error if there was one.
        finalized = await self._run(self._finish, reason)
        if self._short_writes:
            self.count("short_writes", self._short_writes)
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
        try:
            for key, channels in targets.items():
                name = (
                    f"{ctx.stream_id}.{ext}" if key == "stereo" else f"{ctx.stream_id}.{key}.{ext}"
                )
                path = self._dir / name
                if path.resolve().parent != self._dir:  # ids are validated upstream
                    raise ValueError(f"refusing to write outside {self._dir}: {name!r}")
                for t in ("inbound", "outbound") if key == "stereo" else (key,):
                    if t in self._tracks:
                        self._tracks[t].path = str(path)  # before it exists: see _discard
                if self._raw:
                    kind = "ulaw" if self._raw_ulaw_out else "pcm16"
                    self._files[key] = WavWriter(path, ctx.sample_rate, kind)
                else:
                    self._files[key] = sf.SoundFile(
                        str(path),
                        "w",
                        samplerate=ctx.sample_rate,
                        channels=channels,
                        format=fmt,
                        subtype=subtype,
                    )
                self._file_samples[key] = 0
            self._write_sidecar(None, reserve=True)
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        """Opening failed: remove what was created (no audio is in it yet)."""
        self._close_quietly()
        for tr in self._tracks.values():
            if tr.path:
                Path(tr.path).unlink(missing_ok=True)
                tr.path = ""
        self._file_samples.clear()
        with contextlib.suppress(OSError):
            self._dir.rmdir()  # only when empty (other streams of the call may be there)

    def write_batches(self, batches: dict[str, Any]) -> None:
        """Write what :meth:`collect` handed over (the writer thread); nothing after an
        error (the files stay as the error left them)."""
        if self._write_error is not None:
            return
        self._write(batches)
        HEALTH.ok(self._root)

    def _write(self, batches: dict[str, Any]) -> None:
        for key, data in batches.items():
            f = self._files.get(key)
            if f is None:
                continue
            if type(data) is not list:  # a stereo block
                self._sf_write(key, f, data)
                continue
            run: list[Any] = []  # audio between two gaps, joined into one write
            for item in data:
                if type(item) is not int:
                    run.append(item)
                    continue
                if run:
                    self._write_audio(key, f, run)
                    run = []
                while item > 0:
                    k = min(item, SILENCE_PIECE)
                    if self._raw:
                        self._write_audio(key, f, [silence_bytes(self._encoding, k)])
                    else:
                        self._write_audio(key, f, [np.zeros(k, dtype=np.int16)])
                    item -= k
            if run:
                self._write_audio(key, f, run)

    def _write_audio(self, key: str, f: Any, data: list[Any]) -> None:
        if not self._raw:
            self._sf_write(key, f, np.concatenate(data) if len(data) > 1 else data[0])
            return
        raw = b"".join(data)
        if self._encoding == ENCODING_MULAW and not self._raw_ulaw_out:
            raw = ulaw_decode(raw).astype("<i2", copy=False).tobytes()
        elif self._encoding not in (ENCODING_MULAW, ENCODING_L16):
            # A-law, big-endian L16 (Telnyx): decoded once per flush, on this thread.
            raw = audio_decode(raw, self._encoding).astype("<i2", copy=False).tobytes()
        elif self._encoding != ENCODING_MULAW and BIG_ENDIAN:  # pragma: no cover
            raw = np.frombuffer(raw, "<i2").astype(np.int16).tobytes()
        try:
            f.write(raw)  # a WavWriter: on an error its header already matches the file
        finally:
            self._file_samples[key] = f.samples

    def _sf_write(self, key: str, f: sf.SoundFile, data: np.ndarray) -> None:
        """Write through libsndfile (FLAC, stereo), which reports a full disk as a bare
        "System error": the directory is probed to find the OS error behind it."""
        try:
            f.write(data)
            update_header(f)
        except (RuntimeError, AssertionError) as exc:
            if self.opts.format == "wav":
                # libsndfile keeps its WAV header true to the bytes it wrote: count those.
                with contextlib.suppress(RuntimeError):
                    update_header(f)
                    self._file_samples[key] = f.seek(0, sf.SEEK_END)
            try:
                probe(self._dir)
            except OSError as os_exc:
                raise os_exc from None
            raise OSError(5, f"libsndfile: {exc}") from None
        self._file_samples[key] += len(data)

    def _finish(self, reason: StopReason) -> bool:
        """Close the files, then write the final sidecar (with the error, if any); True
        when it was written. Never raises for an OS error: it becomes the recording's."""
        files, self._files = self._files, {}
        for f in files.values():
            if isinstance(f, WavWriter):
                self._short_writes += f.short_writes
            try:
                f.close()
            except (OSError, RuntimeError) as exc:  # FLAC: the last frames did not fit
                self.write_failed(exc if isinstance(exc, OSError) else OSError(5, str(exc)))
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

    def _close_quietly(self) -> None:
        files, self._files = self._files, {}
        for f in files.values():
            try:
                f.close()
            except (OSError, RuntimeError):
                pass

    def _samples(self) -> dict[str, int]:
        """Samples per track in its file (what the disk took), or received when no file."""
        out = {}
        for t, tr in self._tracks.items():
            key = "stereo" if self._stereo else t
            out[t] = self._file_samples.get(key, tr.pos) if self._write_error else tr.pos
        return out

    def _write_sidecar(self, reason: StopReason | None, *, reserve: bool = False) -> None:
        if not self.opts.write_sidecar:
            return
        ctx = self.ctx
        rate = ctx.sample_rate
        samples = self._samples()
        err = self._write_error
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
            "samples": samples,
            "duration_s": {t: round(n / rate, 3) for t, n in samples.items()},
            "gaps": self._gaps,
            "gap_samples_filled": {t: tr.filled for t, tr in self._tracks.items()},
            # why the files end early (audio received after it is not in them), else null
            "error": (describe(err) if isinstance(err, OSError) else str(err)) if err else None,
            "samples_not_written": {
                t: max(0, tr.pos - samples[t]) for t, tr in self._tracks.items()
            },
            "stream": self.ctx.stats(),
        }
        write_sidecar(self._sidecar, doc, reserve=reserve)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
