"""The recorder's WAV writer on a disk that fills up (an injected ``write``: no mount
needed): short writes are retried, and after the error the header counts exactly the whole
samples in the file."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from handlers.wavfile import WavWriter


class FullDisk:
    """``os.write`` on a disk with ``free`` bytes left: at most ``step`` bytes per call
    (a short write), then ENOSPC."""

    def __init__(self, free: int, step: int = 1 << 30) -> None:
        self.free = free
        self.step = step
        self.calls = 0

    def __call__(self, fd: int, data: memoryview) -> int:
        self.calls += 1
        if self.free <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[: min(len(data), self.step, self.free)])
        self.free -= n
        return n


def header_sizes(path: Path, data_at: int) -> tuple[int, int]:
    raw = path.read_bytes()
    return struct.unpack("<I", raw[4:8])[0], struct.unpack("<I", raw[data_at - 4 : data_at])[0]


def pcm(n: int) -> bytes:
    return (np.arange(n, dtype=np.int16) * 7).astype("<i2").tobytes()


def test_short_writes_are_retried_until_all_is_written(tmp_path: Path) -> None:
    disk = FullDisk(1 << 20, step=7)  # the kernel takes 7 bytes at a time
    path = tmp_path / "a.wav"
    w = WavWriter(path, 8000, "pcm16", write=disk)
    w.write(pcm(160))
    w.close()
    assert w.samples == 160 and w.short_writes > 10
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == 8000 and np.array_equal(data, np.frombuffer(pcm(160), "<i2"))


@pytest.mark.parametrize("kind", ["pcm16", "ulaw"])
def test_a_full_disk_leaves_the_header_equal_to_the_data(tmp_path: Path, kind: str) -> None:
    # Room for the header and 1001 bytes of audio: the 16-bit file ends on a whole sample.
    path = tmp_path / "a.wav"
    probe = WavWriter(tmp_path / "probe.wav", 8000, kind)
    header = probe.data_at
    probe.close()
    disk = FullDisk(header + 1001, step=300)
    w = WavWriter(path, 8000, kind, write=disk)
    with pytest.raises(OSError) as info:
        for _ in range(10):
            w.write(pcm(160) if kind == "pcm16" else b"\x55" * 320)
    assert info.value.errno == errno.ENOSPC
    w.close()
    block = 2 if kind == "pcm16" else 1
    on_disk = path.stat().st_size - header
    assert on_disk == 1001 - 1001 % block == w.data_bytes
    riff, data_size = header_sizes(path, header)
    assert data_size == on_disk and riff == path.stat().st_size - 8
    assert sf.info(str(path)).frames == w.samples == on_disk // block


def test_a_disk_full_at_once_closes_the_file_and_raises(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError) as info:
        WavWriter(tmp_path / "a.wav", 8000, "pcm16", write=FullDisk(10))
    assert info.value.errno == errno.ENOSPC
    assert len(os.listdir("/proc/self/fd")) == fds_before  # no descriptor left open
