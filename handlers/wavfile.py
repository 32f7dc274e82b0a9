"""The recorder's file writers: a lean mono WAV writer and the header update for soundfile.

Both keep a file complete and readable at any moment (also after ``kill -9``) without
fsync: the lengths in the header follow every write. When the disk fills up, the WAV
writer's header still tells the truth: it counts only the bytes the kernel took (a short
``os.write`` is retried with the rest; the error that ends it leaves the file cut to whole
samples and the header rewritten to that length). A resumed stream's recorder continues
its WAV files (``append_at``).
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import soundfile as sf

__all__ = ["BIG_ENDIAN", "SILENCE_PIECE", "WavWriter", "WriteFn", "update_header"]

BIG_ENDIAN = sys.byteorder == "big"
#: The most silence written at once (samples): 1 s at 32 kHz.
SILENCE_PIECE = 32000

#: ``os.write``'s shape: ``write(fd, data) -> bytes written`` (may be fewer; raises OSError).
WriteFn = Callable[[int, memoryview], int]


class WavWriter:
    """A mono WAV file written with plain ``os.write`` calls (16-bit PCM or G.711 μ-law).

    After every write the RIFF and data sizes are rewritten in place (two ``pwrite``
    calls), so the file is complete and readable at any moment — also after a crash —
    without fsync and without the per-call overhead of a general audio library.

    A short write is retried with what is left until all is written or the kernel raises
    (``ENOSPC``...). Then the file is truncated to the whole samples written, the header
    updated to match and the error re-raised: :attr:`samples` is what the file holds.
    ``write`` is the system call, by default :attr:`system_write` (``os.write``): the seam
    for tests that fill a disk.
    """

    #: The ``write(fd, data)`` every writer uses unless given one.
    system_write: ClassVar[WriteFn] = staticmethod(os.write)

    def __init__(
        self,
        path: Path,
        rate: int,
        kind: str,
        *,
        write: WriteFn | None = None,
        append_at: int | None = None,
    ) -> None:
        self.ulaw = kind == "ulaw"
        self._os_write: WriteFn = write or WavWriter.system_write
        self.data_bytes = 0
        #: writes the kernel took only in part (a filling disk)
        self.short_writes = 0
        bits, tag, block = (8, 7, 1) if self.ulaw else (16, 1, 2)
        self.block = block
        if append_at is not None and self._reopen(path, rate, tag, append_at):
            return
        fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * block, block, bits)
        if self.ulaw:
            # Non-PCM formats carry a cbSize and a fact chunk (sample count).
            fmt += struct.pack("<H", 0)
            fact = b"fact" + struct.pack("<II", 4, 0)
        else:
            fact = b""
        header = b"fmt " + struct.pack("<I", len(fmt)) + fmt + fact
        self.fact_at = 12 + 8 + len(fmt) + 8 if self.ulaw else 0
        self.data_at = 12 + len(header) + 8  # first byte of audio
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            head = b"RIFF" + struct.pack("<I", 0) + b"WAVE" + header + b"data\0\0\0\0"
            self._write_all(memoryview(head))
            self._update()
        except _Partial as partial:
            os.close(self.fd)
            raise partial.error from None
        except BaseException:
            os.close(self.fd)
            raise

    def _reopen(self, path: Path, rate: int, tag: int, at: int) -> bool:
        """Continue a file of ours (same kind and rate) at sample ``at``: what lies beyond
        is cut, a shorter file is padded with silence. False if it is not such a file."""
        with open(path, "rb") as f:
            head = f.read(128)
        data = head.find(b"data")
        if len(head) < 36 or head[:4] != b"RIFF" or head[8:12] != b"WAVE" or data < 0:
            return False
        got_tag, _, got_rate = struct.unpack("<HHI", head[20:28])
        if (got_tag, got_rate) != (tag, rate):
            return False
        self.data_at = data + 8
        self.fact_at = head.find(b"fact") + 8 if self.ulaw and b"fact" in head else 0
        self.fd = os.open(path, os.O_WRONLY)
        have = os.fstat(self.fd).st_size - self.data_at
        want = at * self.block
        self.data_bytes = min(have, want) - min(have, want) % self.block
        os.ftruncate(self.fd, self.data_at + self.data_bytes)
        os.lseek(self.fd, 0, os.SEEK_END)
        self._update()
        if self.data_bytes < want:  # silence up to where the stream resumes
            self.write((b"\xff" if self.ulaw else b"\x00") * (want - self.data_bytes))
        return True

    @property
    def samples(self) -> int:
        """Samples in the file (what the header says)."""
        return self.data_bytes // self.block

    def write(self, data: bytes) -> None:
        """Append ``data``; on an OS error the file is left consistent, then it re-raises."""
        if not data:
            return
        try:
            self.data_bytes += self._write_all(memoryview(data))
        except _Partial as partial:
            self.data_bytes += partial.done
            self._settle()
            raise partial.error from None
        self._update()

    def _write_all(self, view: memoryview) -> int:
        done = 0
        total = len(view)
        while done < total:
            try:
                n = self._os_write(self.fd, view[done:])
            except OSError as exc:
                raise _Partial(done, exc) from None
            if n <= 0:  # no progress and no error: treat as a full disk
                raise _Partial(done, OSError(28, os.strerror(28)))
            if n < total - done:
                self.short_writes += 1
            done += n
        return done

    def _settle(self) -> None:
        # Whole samples only: a sample cut in half by a full disk is dropped, so that the
        # data chunk and the header agree to the byte.
        self.data_bytes -= self.data_bytes % self.block
        os.ftruncate(self.fd, self.data_at + self.data_bytes)  # shrinking needs no space
        self._update()

    def _update(self) -> None:
        n = self.data_bytes
        os.pwrite(self.fd, struct.pack("<I", self.data_at - 8 + n), 4)
        os.pwrite(self.fd, struct.pack("<I", n), self.data_at - 4)
        if self.fact_at:
            os.pwrite(self.fd, struct.pack("<I", n), self.fact_at)

    def close(self) -> None:
        os.close(self.fd)


class _Partial(Exception):
    """``_write_all`` stopped after ``done`` bytes with ``error``."""

    def __init__(self, done: int, error: OSError) -> None:
        super().__init__(done, error)
        self.done = done
        self.error = error


_SFC_UPDATE_HEADER_NOW = 0x1060  # libsndfile's sfendian.h / sndfile.h command number


def update_header(f: sf.SoundFile) -> None:
    """Rewrite the WAV header's lengths so the file is readable after a crash.

    ``SoundFile.flush()`` would do it too, but it also fsyncs, which costs ~150 µs per call
    and hammers the disk with thousands of streams; surviving a process kill only needs the
    data in the OS page cache.
    """
    cdata = getattr(f, "_file", None)
    if cdata is None:  # pragma: no cover - soundfile internals changed
        f.flush()
        return
    sf._snd.sf_command(cdata, _SFC_UPDATE_HEADER_NOW, sf._ffi.NULL, 0)
