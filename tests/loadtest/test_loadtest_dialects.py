"""The load tester in every dialect: frame templates decoded by the server-side dialect
modules, and a short Twilio run against the real server (recordings and echo)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import pytest

from streamserver.audio import AudioFormat
from streamserver.loadtest import LoadTestConfig, run_loadtest
from streamserver.loadtest.config import Subject, Thresholds
from streamserver.loadtest.wire import MediaTemplates, start_frames, stop_frame, tag_of_raw
from streamserver.protocol import Media, Start, Stop, detect
from streamserver.settings import RouteSettings

SID = "0123456789abcdef0123456789abcdef0123"
#: The server detects dialects once its routes can pin one (issue 13, server side).
SERVER_SPEAKS_DIALECTS = any(f.name == "dialect" for f in dataclasses.fields(RouteSettings))
needs_dialect_server = pytest.mark.skipif(
    not SERVER_SPEAKS_DIALECTS,
    reason="the stream server does not detect Twilio/Telnyx/Exotel/Vonage yet "
    "(session auto-detection and Vonage binary frames are the server side of issue 13)",
)


@pytest.mark.parametrize("dialect", ["plivo", "twilio", "telnyx", "exotel", "vonage"])
def test_templates_are_the_dialects_frames(dialect: str) -> None:
    fmt = AudioFormat(*detect.PROVIDER_FORMATS[dialect][0])
    payloads = [bytes([0x10 + k]) * fmt.frame_bytes for k in range(3)]
    tpl = MediaTemplates(payloads, ("inbound",), "", dialect=dialect)
    d = detect.get(dialect)
    first = start_frames(dialect, "CA1", SID, "AC1", ("inbound",), fmt, "")
    found = None
    for msg in first:
        found = found or detect.detect(msg)
    assert found is d
    start = d.decode(first[-1])
    assert isinstance(start, Start) and start.call_id == "CA1"
    assert (start.encoding, start.sample_rate) == (fmt.encoding, fmt.sample_rate)
    sid = tpl.frame_id(SID)
    for k in range(3):
        body = tpl.pre[0][k] + sid + tpl.post[0][k]
        event = d.decode_binary(body) if tpl.binary else d.decode(body)
        assert isinstance(event, Media) and event.payload == payloads[k]
        head = tpl.head[0][k]
        assert head[0] == (0x82 if dialect == "vonage" else 0x81) and head[1] & 0x80
    stop = stop_frame(tpl.stop_seq(), "CA1", SID, ("inbound",), dialect)
    if dialect == "vonage":
        assert stop is None and sid == b""
    else:
        assert stop is not None and isinstance(d.decode(stop), Stop)
    assert tag_of_raw(bytes((0xFE, 0xFE, 0xFD))) == 1 and tag_of_raw(b"\x00\x00\x00") == -1


def test_plivo_templates_build_as_fast_as_before() -> None:
    """A smoke bound: 1,000 frames' templates in well under a second on a busy machine."""
    payloads = [bytes([k % 200]) * 160 for k in range(1000)]
    t = time.perf_counter()
    MediaTemplates(payloads, ("inbound",), "")
    assert time.perf_counter() - t < 1.0


@needs_dialect_server
async def test_twilio_loadtest_verifies_recordings_and_echo(
    serve: Any, record_dir: Path, tmp_path: Path
) -> None:
    routes = {"/stream": {"handlers": ["recorder", "echo"], "bidirectional": True}}
    async with serve(routes=routes) as server:
        cfg = LoadTestConfig(
            subjects=[Subject("in-process", url=f"{server.url}/stream", pid=os.getpid())],
            record_dir=record_dir,
            streams=3,
            duration_s=2.0,
            ramp_s=0.2,
            tail_s=0.3,
            out_dir=tmp_path / "out",
            progress=None,
            seed=1,
            plots=False,
            echo=True,
            verify=True,
            dialect="twilio",
            thresholds=Thresholds(
                max_lateness_p99_ms=200.0,
                max_rtt_p99_ms=2000.0,
                max_cpu_pct=1000.0,
                max_loop_lag_ms=5000.0,
            ),
        )
        result = await run_loadtest(cfg)
    (sub,) = result.subjects
    (lv,) = sub.levels
    frames = 3 * 100
    assert (lv.connected, lv.failed, lv.abnormal, lv.frames_sent) == (3, 0, 0, frames)
    assert lv.echo_matched == frames and lv.echo_unmatched == 0
    assert lv.recordings is not None and (lv.recordings.checked, lv.recordings.exact) == (3, 3)
    assert "twilio streams" in (tmp_path / "out" / "report.md").read_text()
