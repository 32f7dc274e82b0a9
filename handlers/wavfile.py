"""The recorder's file writers: a lean mono WAV writer and the header update for soundfile.

Both keep a file complete and readable at any moment (also after ``kill -9``) without
fsync: the lengths in the header follow every write.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import soundfile as sf

__all__ = ["BIG_ENDIAN", "SILENCE_PIECE", "WavWriter", "update_header"]

BIG_ENDIAN = sys.byteorder == "big"
#: The most silence written at once (samples): 1 s at 32 kHz.
SILENCE_PIECE = 32000


class WavWriter:
    """A mono WAV file written with plain ``os.write`` calls (16-bit PCM or G.711 μ-law).

    After every write the RIFF and data sizes are rewritten in place (two ``pwrite``
    calls), so the file is complete and readable at any moment — also after a crash —
    without fsync and without the per-call overhead of a general audio library.

    ``append_at`` continues a file this writer made (same kind and rate) at that sample:
    what lies beyond is cut, a shorter file is padded with silence.
    """

    def __init__(self, path: Path, rate: int, kind: str, *, append_at: int | None = None) -> None:
        self.ulaw = kind == "ulaw"
        bits, tag, block = (8, 7, 1) if self.ulaw else (16, 1, 2)
        if append_at is not None and self._reopen(path, rate, tag, block, append_at):
            return
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.data_bytes = 0
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
        os.write(self.fd, b"RIFF" + struct.pack("<I", 0) + b"WAVE" + header + b"data\0\0\0\0")
        self._update()

    def _reopen(self, path: Path, rate: int, tag: int, block: int, at: int) -> bool:
        """Continue the file at sample ``at``; False if it is not one of ours alike."""
        with open(path, "rb") as f:
            head = f.read(128)
        data = head.find(b"data")
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE" or data < 0 or len(head) < 36:
            return False
        got_tag, _, got_rate = struct.unpack("<HHI", head[20:28])
        if (got_tag, got_rate) != (tag, rate):
            return False
        self.data_at = data + 8
        self.fact_at = head.find(b"fact") + 8 if self.ulaw and b"fact" in head else 0
        self.fd = os.open(path, os.O_WRONLY)
        have = os.fstat(self.fd).st_size - self.data_at
        want = at * block
        os.ftruncate(self.fd, self.data_at + min(have, want))
        os.lseek(self.fd, 0, os.SEEK_END)
        self.data_bytes = min(have, want)
        if have < want:  # silence up to where the stream resumes
            self.write((b"\xff" if self.ulaw else b"\x00") * (want - have))
        self._update()
        return True

    def write(self, data: bytes) -> None:
        if data:
            os.write(self.fd, data)
            self.data_bytes += len(data)
            self._update()

    def _update(self) -> None:
        n = self.data_bytes
        os.pwrite(self.fd, struct.pack("<I", self.data_at - 8 + n), 4)
        os.pwrite(self.fd, struct.pack("<I", n), self.data_at - 4)
        if self.fact_at:
            os.pwrite(self.fd, struct.pack("<I", n), self.fact_at)

    def close(self) -> None:
        os.close(self.fd)


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
