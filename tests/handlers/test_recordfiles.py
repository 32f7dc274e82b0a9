"""The recorder's files when a resumed stream continues them (no event loop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from handlers.recordfiles import RecordingFiles
from handlers.wavfile import WavWriter


def files(tmp_path: Path, *, raw: bool, ext: str = "wav") -> RecordingFiles:
    return RecordingFiles(
        tmp_path / "call", "s1", rate=8000, encoding="audio/x-l16", raw=raw, ulaw_out=False,
        ext=ext, subtype="PCM_16",
    )  # fmt: skip


def pcm(n: int, value: int) -> bytes:
    return np.full(n, value, dtype="<i2").tobytes()


def test_a_resumed_wav_continues_at_its_position_padding_or_cutting(tmp_path: Path) -> None:
    first = files(tmp_path, raw=True)
    first.open({"inbound": 1}, {}, 1)
    first.write({"inbound": [pcm(800, 1)]})
    assert first.close() == []
    # Resumed at 1000: 200 samples of silence, then the new connection's audio.
    again = files(tmp_path, raw=True)
    again.open({"inbound": 1}, {"inbound": 1000}, 2)
    assert again.samples["inbound"] == 1000
    again.write({"inbound": [pcm(100, 2)]})
    again.close()
    got, _ = sf.read(str(tmp_path / "call" / "s1.inbound.wav"), dtype="int16")
    assert list(got[:800]) == [1] * 800 and not got[800:1000].any()
    assert list(got[1000:]) == [2] * 100
    # Resumed before its end (the file had more than the stream's timeline): cut there.
    cut = files(tmp_path, raw=True)
    cut.open({"inbound": 1}, {"inbound": 500}, 3)
    cut.close()
    assert sf.info(str(tmp_path / "call" / "s1.inbound.wav")).frames == 500


def test_a_resumed_flac_continues_in_a_part_file_and_discard_keeps_old_files(
    tmp_path: Path,
) -> None:
    first = files(tmp_path, raw=False, ext="flac")
    first.open({"inbound": 1}, {}, 1)
    first.write({"inbound": [np.full(400, 3, dtype=np.int16)]})
    first.close()
    again = files(tmp_path, raw=False, ext="flac")
    again.open({"inbound": 1}, {"inbound": 400}, 2)
    assert again.paths["inbound"].name == "s1.part2.inbound.flac"
    again.discard()  # a failed start removes only what it created
    assert (tmp_path / "call" / "s1.inbound.flac").is_file()
    assert not (tmp_path / "call" / "s1.part2.inbound.flac").exists()


def test_a_file_not_ours_is_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    sf.write(str(path), np.zeros(100, dtype=np.int16), 16000, subtype="PCM_16")  # other rate
    w = WavWriter(path, 8000, "pcm16", append_at=50)
    assert w.samples == 0
    w.close()
