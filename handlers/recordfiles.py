"""The recorder's files, on its writer thread: open them (new, or continued where a
resumed stream's earlier connection left them), write batches of buffered audio, close.

Mono WAV files are written raw (:class:`~handlers.wavfile.WavWriter`: the payload bytes as
received, decoded once per write where the file stores PCM); stereo and FLAC go through
soundfile with decoded samples. :attr:`RecordingFiles.samples` is what each file holds,
also after a full disk cut a write short. A resumed stream appends to its WAV files at
the position it resumes at (a shorter file is padded with silence, a longer one cut
there); FLAC cannot be reopened for writing, so a resumed FLAC recording continues in a
part file, ``{stream_id}.part{connection}.{track}.flac``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from streamserver.audio import ENCODING_L16, ENCODING_MULAW, silence_bytes, ulaw_decode
from streamserver.audio import decode as audio_decode

from .recorddir import probe
from .wavfile import BIG_ENDIAN, SILENCE_PIECE, WavWriter, update_header

__all__ = ["RecordingFiles"]


class RecordingFiles:
    """The open files of one recording, keyed by track (or ``"stereo"``)."""

    def __init__(
        self,
        directory: Path,
        stream_id: str,
        *,
        rate: int,
        encoding: str,
        raw: bool,
        ulaw_out: bool,
        ext: str,
        subtype: str,
    ) -> None:
        self.dir = directory
        self._stream_id = stream_id
        self._rate = rate
        self._encoding = encoding
        self.raw = raw  # mono WAV written with WavWriter from payload bytes
        self._ulaw_out = ulaw_out  # raw μ-law kept as μ-law
        self._ext = ext
        self._subtype = subtype
        self.files: dict[str, Any] = {}  # sf.SoundFile or WavWriter
        self.paths: dict[str, Path] = {}
        #: samples in each file (written and accepted by the disk), by key
        self.samples: dict[str, int] = {}
        self.short_writes = 0
        self._created: set[Path] = set()

    def open(self, targets: dict[str, int], resume_at: dict[str, int], part: int) -> None:
        """Open one file per target (``key: channels``); with ``resume_at`` (key: sample
        position) continue existing ones there (``part``: this connection's number). On an
        error what was created is removed (nothing is in it yet) and the error raised."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fmt = "WAV" if self._ext == "wav" else "FLAC"
        try:
            for key, channels in targets.items():
                at = resume_at.get(key)
                path = self._path(key, part if at is not None and fmt == "FLAC" else 1)
                if path.resolve().parent != self.dir:  # ids are validated upstream
                    raise ValueError(f"refusing to write outside {self.dir}: {path.name!r}")
                self.paths[key] = path
                append = at is not None and fmt == "WAV" and path.is_file()
                if not append:
                    self._created.add(path)
                self.files[key] = self._open_one(path, channels, at if append else None)
                self.samples[key] = at if append and at is not None else 0
        except BaseException:
            self.discard()
            raise

    def _open_one(self, path: Path, channels: int, at: int | None) -> Any:
        if self.raw:
            kind = "ulaw" if self._ulaw_out else "pcm16"
            return WavWriter(path, self._rate, kind, append_at=at)
        if at is not None:
            f = sf.SoundFile(str(path), "r+")
            if f.frames > at:
                f.seek(at)
                f.truncate(at)
            f.seek(0, sf.SEEK_END)
            if f.frames < at:
                f.write(np.zeros((at - f.frames, channels), dtype=np.int16))
            return f
        fmt = "WAV" if self._ext == "wav" else "FLAC"
        return sf.SoundFile(
            str(path), "w", samplerate=self._rate, channels=channels, format=fmt,
            subtype=self._subtype,
        )  # fmt: skip

    def _path(self, key: str, part: int) -> Path:
        sid, ext = self._stream_id, self._ext
        base = sid if part == 1 else f"{sid}.part{part}"
        name = f"{base}.{ext}" if key == "stereo" else f"{base}.{key}.{ext}"
        return self.dir / name

    def discard(self) -> None:
        """Opening failed: close, and remove the files created here (continued ones stay)."""
        self.close_quietly()
        for path in self._created:
            path.unlink(missing_ok=True)
        self._created.clear()
        self.paths.clear()
        self.samples.clear()
        with contextlib.suppress(OSError):
            self.dir.rmdir()  # only when empty (other streams of the call may be there)

    def write(self, batches: dict[str, Any]) -> None:
        """Write what the recorder collected: per key a list of chunks (bytes or int16
        arrays, and ints for that many samples of silence) or a stereo block."""
        for key, data in batches.items():
            f = self.files.get(key)
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
                    if self.raw:
                        self._write_audio(key, f, [silence_bytes(self._encoding, k)])
                    else:
                        self._write_audio(key, f, [np.zeros(k, dtype=np.int16)])
                    item -= k
            if run:
                self._write_audio(key, f, run)

    def _write_audio(self, key: str, f: Any, data: list[Any]) -> None:
        if not self.raw:
            self._sf_write(key, f, np.concatenate(data) if len(data) > 1 else data[0])
            return
        raw = b"".join(data)
        if self._encoding == ENCODING_MULAW and not self._ulaw_out:
            raw = ulaw_decode(raw).astype("<i2", copy=False).tobytes()
        elif self._encoding not in (ENCODING_MULAW, ENCODING_L16):
            # A-law, big-endian L16 (Telnyx): decoded once per flush, on this thread.
            raw = audio_decode(raw, self._encoding).astype("<i2", copy=False).tobytes()
        elif self._encoding != ENCODING_MULAW and BIG_ENDIAN:  # pragma: no cover
            raw = np.frombuffer(raw, "<i2").astype(np.int16).tobytes()
        try:
            f.write(raw)  # a WavWriter: on an error its header already matches the file
        finally:
            self.samples[key] = f.samples

    def _sf_write(self, key: str, f: sf.SoundFile, data: np.ndarray) -> None:
        """Write through libsndfile (FLAC, stereo), which reports a full disk as a bare
        "System error": the directory is probed to find the OS error behind it."""
        try:
            f.write(data)
            update_header(f)
        except (RuntimeError, AssertionError) as exc:
            if self._ext == "wav":
                # libsndfile keeps its WAV header true to the bytes it wrote: count those.
                with contextlib.suppress(RuntimeError):
                    update_header(f)
                    self.samples[key] = f.seek(0, sf.SEEK_END)
            try:
                probe(self.dir)
            except OSError as os_exc:
                raise os_exc from None
            raise OSError(5, f"libsndfile: {exc}") from None
        self.samples[key] += len(data)

    def close(self) -> list[OSError]:
        """Close every file; the errors (FLAC's last frames not fitting, ...), if any."""
        errors: list[OSError] = []
        files, self.files = self.files, {}
        for f in files.values():
            if isinstance(f, WavWriter):
                self.short_writes += f.short_writes
            try:
                f.close()
            except (OSError, RuntimeError) as exc:
                errors.append(exc if isinstance(exc, OSError) else OSError(5, str(exc)))
        return errors

    def close_quietly(self) -> None:
        """Close every file, ignoring errors (after a failed write)."""
        files, self.files = self.files, {}
        for f in files.values():
            try:
                f.close()
            except (OSError, RuntimeError):
                pass
