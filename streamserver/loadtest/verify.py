"""Checks that every recording holds exactly the audio that was sent, sample for sample.

The recorder writes ``{record_dir}/{call_id}/{stream_id}.{track}.wav``. The load tester
knows each stream's ids and how many frames it sent, and every stream sent the same audio
from frame 0, so the expected samples of a stream are the first ``frames x frame_samples``
samples of one decoded reference; under frame faults the frames a stream never sent are
silence there (the server fills gaps exactly), whatever was duplicated or reordered.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import PCM, AudioFormat
from .tally import StreamRecord

__all__ = ["VerifyResult", "verify_recordings", "wait_for_sidecars"]

_MAX_PROBLEMS = 10


@dataclass
class VerifyResult:
    """How many recordings were checked, how many were sample-exact, and the first problems."""

    checked: int = 0
    exact: int = 0
    missing: int = 0
    mismatched: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checked > 0 and self.exact == self.checked

    def _problem(self, message: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(message)


def wait_for_sidecars(
    record_dir: Path, streams: Iterable[StreamRecord], timeout_s: float = 30.0
) -> bool:
    """Wait until the recorder has closed every connected stream's files (its JSON sidecar
    says ``stop_reason``); False on timeout or when the server writes no sidecars."""
    import json

    pending = [record_dir / s.call_id / f"{s.stream_id}.json" for s in streams if s.frames_sent > 0]
    deadline = time.monotonic() + timeout_s
    while pending:
        still = []
        for p in pending:
            try:
                if json.loads(p.read_text()).get("stop_reason") is None:
                    still.append(p)
            except (OSError, ValueError):
                still.append(p)
        pending = still
        if not pending:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def verify_recordings(
    record_dir: Path,
    streams: Iterable[StreamRecord],
    reference: PCM,
    fmt: AudioFormat,
    tracks: tuple[str, ...] = ("inbound",),
) -> VerifyResult:
    """Compare each connected stream's recording(s) with ``reference[: frames x fs]``."""
    fs = fmt.frame_samples
    result = VerifyResult()
    for s in streams:
        if not s.connected or s.frames_sent == 0:
            continue
        expected = reference[: s.frames_sent * fs]
        if s.lost:
            expected = expected.copy()
            for k in s.lost:
                expected[k * fs : (k + 1) * fs] = 0
        for track in tracks:
            result.checked += 1
            path = record_dir / s.call_id / f"{s.stream_id}.{track}.wav"
            try:
                got, rate = sf.read(str(path), dtype="int16", always_2d=False)
            except (OSError, RuntimeError) as exc:
                result.missing += 1
                result._problem(f"{path.name}: cannot read ({exc})")
                continue
            if rate != fmt.sample_rate:
                result.mismatched += 1
                result._problem(f"{path.name}: {rate} Hz, expected {fmt.sample_rate}")
                continue
            if got.shape[0] != expected.shape[0]:
                result.mismatched += 1
                result._problem(
                    f"{path.name}: {got.shape[0]} samples, expected {expected.shape[0]}"
                )
                continue
            diff = np.flatnonzero(got != expected)
            if diff.size:
                result.mismatched += 1
                result._problem(f"{path.name}: {diff.size} samples differ, first at {int(diff[0])}")
                continue
            result.exact += 1
    return result
