"""The load tester: its wire pieces without I/O, then short real runs against real servers.

The runs are small (a few streams for about a second) so the suite stays fast, but they go
through everything a real benchmark does: the paced engine, echo matching, /metrics deltas,
recording verification, the report, the plots, the ladder, generator processes and a server
the tester starts itself.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import soundfile as sf

from streamserver.audio import AudioFormat, ulaw_decode, ulaw_encode
from streamserver.loadtest import (
    Histogram,
    LoadTestConfig,
    Subject,
    Thresholds,
    run_loadtest,
)
from streamserver.loadtest.measure import sample_metrics
from streamserver.loadtest.results import LevelResult
from streamserver.loadtest.stats import sparse_of
from streamserver.loadtest.tally import StreamRecord
from streamserver.loadtest.target import parse_metrics
from streamserver.loadtest.verify import verify_recordings
from streamserver.loadtest.wire import (
    SAMPLES_DIR,
    HandshakeError,
    MediaTemplates,
    _tag_bytes,
    load_audio,
    parse_response,
    tag_of,
    tagged_frames,
)
from streamserver.protocol import plivo

REPO = Path(__file__).resolve().parents[2]
MULAW = AudioFormat.from_content_type("audio/x-mulaw;rate=8000")
LOOSE = Thresholds(
    max_lateness_p99_ms=200.0, max_rtt_p99_ms=2000.0, max_cpu_pct=1000.0, max_loop_lag_ms=5000.0
)
LOOSE_FLAGS = [
    "--max-lateness-ms",
    "200",
    "--max-rtt-ms",
    "2000",
    "--max-cpu",
    "1000",
    "--max-loop-lag-ms",
    "5000",
]


# --- pure pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 126, 127, 5000, 127**2 + 3, 127**3 - 1])
def test_tag_survives_base64_and_a_mulaw_round_trip(k: int) -> None:
    audio = load_audio(SAMPLES_DIR / "hello-8k.wav", MULAW)
    i = (k % (len(audio) // 160)) * 160
    payload = _tag_bytes(k) + audio[i + 3 : i + 160]
    if k < 200:
        assert tagged_frames(audio, 160, k + 1, tag=True)[k] == payload
    assert tag_of(base64.b64encode(payload)[:4]) == k
    # A server that decodes and re-encodes μ-law still returns the same tag.
    again = ulaw_encode(ulaw_decode(payload))
    assert tag_of(base64.b64encode(again)[:4]) == k


def test_untagged_audio_reads_as_no_tag() -> None:
    assert tag_of(base64.b64encode(b"\x00\x00\x00")) == -1
    assert tag_of(b"!!") == -1


def test_media_templates_match_the_plivo_frame_shape() -> None:
    payloads = [bytes([i]) * 160 for i in range(3)]
    tpl = MediaTemplates(payloads, ("inbound", "outbound"), "a=1")
    sid = "0" * 36
    for t, track in enumerate(("inbound", "outbound")):
        for k in range(3):
            text = tpl.pre[t][k] + sid.encode() + tpl.post[t][k]
            msg = json.loads(text)
            assert msg["event"] == "media"
            assert msg["streamId"] == sid
            assert msg["sequenceNumber"] == 2 + 2 * k + t
            assert msg["extra_headers"] == "a=1"
            assert msg["media"] == {
                "track": track,
                "timestamp": str(20 * k),
                "chunk": k + 1,
                "payload": base64.b64encode(payloads[k]).decode(),
            }
            # The server's own decoder accepts it as a media frame of this stream.
            event = plivo.decode(text)
            assert type(event).__name__ == "Media"
            # The precomputed header announces exactly this length (masked, RFC 6455 §5.2).
            head = tpl.head[t][k]
            assert head[0] == 0x81 and head[1] & 0x80
            n = head[1] & 0x7F
            if n == 126:
                n = int.from_bytes(head[2:4], "big")
            assert n == len(text)
    with pytest.raises(ValueError):
        MediaTemplates.check_id("short")


def test_upgrade_response_checks() -> None:
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    ok = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    parse_response(ok, key)
    with pytest.raises(HandshakeError) as err:
        parse_response(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0", key)
    assert err.value.status == 503
    with pytest.raises(HandshakeError):
        parse_response(b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope", key)


def test_histogram_percentiles_merge_like_numpy() -> None:
    rng = np.random.default_rng(3)
    values = rng.exponential(5.0, 20_000)
    h = Histogram()
    for part in np.array_split(values, 7):  # windows from several processes
        h.add(sparse_of(array("d", part)))
    s = h.summary()
    assert s is not None and s.count == values.size
    for got, q in ((s.p50, 50), (s.p90, 90), (s.p99, 99)):
        assert abs(got - float(np.percentile(values, q))) <= 0.11  # one 0.1 ms bin
    assert s.max == pytest.approx(values.max())


def test_parse_metrics() -> None:
    text = (
        "# HELP streamserver_gaps_total Gaps.\n# TYPE streamserver_gaps_total counter\n"
        'streamserver_gaps_total 3\nstreamserver_handler_dropped_samples_total{handler="echo"} 7\n'
    )
    m = parse_metrics(text)
    assert m["streamserver_gaps_total"] == 3
    assert m['streamserver_handler_dropped_samples_total{handler="echo"}'] == 7


def test_a_scrape_of_two_workers_gives_the_share_pairing_and_the_deepest_reads() -> None:
    lv = LevelResult("s", 10, 1.0, False, 1)
    m = {
        'streamserver_streams_read_batched{worker="0"}': 40.0,
        'streamserver_streams_read_batched{worker="1"}': 30.0,
        'streamserver_read_batch_depth{worker="0"}': 6.0,
        'streamserver_read_batch_depth{worker="1"}': 2.0,
        'streamserver_writes_paired{worker="0"}': 1.0,
        'streamserver_writes_paired{worker="1"}': 0.0,
        'streamserver_event_loop_utilisation{worker="0"}': 0.96,
        'streamserver_event_loop_utilisation{worker="1"}': 0.7,
        'streamserver_event_loop_lag_seconds{worker="0"}': 0.004,
        'streamserver_event_loop_lag_seconds{worker="1"}': 0.001,
        'streamserver_streams_active{worker="0"}': 60.0,
        'streamserver_streams_active{worker="1"}': 40.0,
    }
    t, lag, streams = sample_metrics(lv, m, 3.25)
    assert (t, streams) == (3.25, 100.0) and lag == pytest.approx(5.0)
    assert lv.server_read_batched_max == 70 and lv.server_read_batch_depth_max == 6
    ((ts, share, util),) = lv.server_paired_samples
    assert (ts, share) == (3.25, 0.5) and util == pytest.approx(0.83)
    assert not lv.server_lag_recent  # no recent-max gauge: the latest ticks' lag
    # A server that keeps the worst tick of the last 1.5 s: that, the worst worker's.
    m['streamserver_event_loop_lag_recent_max_seconds{worker="0"}'] = 0.03
    m['streamserver_event_loop_lag_recent_max_seconds{worker="1"}'] = 0.25
    _, lag, _ = sample_metrics(lv, m, 4.25)
    assert lag == pytest.approx(250.0) and lv.server_lag_recent
    # A server without these metrics (another product) leaves them unset.
    other = LevelResult("s", 10, 1.0, False, 1)
    sample_metrics(other, {"process_cpu_seconds_total": 1.0}, 1.0)
    assert other.server_read_batched_max is None and other.server_paired_samples == []


# --- real runs ------------------------------------------------------------------------------


def _config(tmp_path: Path, url: str, **kw: Any) -> LoadTestConfig:
    defaults: dict[str, Any] = {
        "subjects": [Subject("in-process", url=url, pid=os.getpid())],
        "streams": 4,
        "duration_s": 1.2,
        "ramp_s": 0.2,
        "tail_s": 0.3,
        "out_dir": tmp_path / "out",
        "progress": None,
        "seed": 1,
        # These runs check function, not speed: loose service levels keep them deterministic
        # on a busy machine.
        "thresholds": LOOSE,
    }
    defaults.update(kw)
    return LoadTestConfig(**defaults)


async def test_echo_run_measures_round_trip_and_verifies_recordings(
    serve: Any, record_dir: Path, tmp_path: Path
) -> None:
    routes = {"/stream": {"handlers": ["recorder", "echo"], "bidirectional": True}}
    async with serve(routes=routes) as server:
        cfg = _config(
            tmp_path, f"{server.url}/stream", echo=True, verify=True, record_dir=record_dir
        )
        result = await run_loadtest(cfg)
    (sub,) = result.subjects
    (lv,) = sub.levels
    assert lv.failures == [] and lv.held and sub.held_max == 4
    frames = 4 * 60  # 1.2 s of 20 ms frames per stream
    assert (lv.connected, lv.failed, lv.abnormal, lv.frames_sent) == (4, 0, 0, frames)
    assert lv.echo_matched == frames and lv.echo_unmatched == 0
    assert lv.rtt_ms is not None and lv.rtt_ms.count == frames and lv.rtt_ms.p99 < 1000
    assert lv.lateness_ms is not None and lv.lateness_ms.count == frames
    assert lv.return_gap_ms is not None
    assert lv.server_metrics and lv.server_frames_received == frames
    assert lv.server_frames_lost == 0 and lv.server_frames_sent == frames
    assert lv.recordings is not None and (lv.recordings.checked, lv.recordings.exact) == (4, 4)
    assert lv.cpu_samples and lv.rss_peak_mib
    # What the callers heard: each call's echo began with its first frame back, and the
    # echoes played out through the simulated jitter buffer.
    assert lv.first_audio_ms is not None and lv.first_audio_ms.count == 4
    assert lv.first_audio_missing == 0 and lv.barge_in_ms is None
    assert lv.playout_minutes > 0 and lv.underruns_per_min is not None
    assert lv.qoe_grade in ("good", "degraded", "bad") and "echo round trip p99" in lv.qoe
    assert result.exit_code == 0
    out = tmp_path / "out"
    doc = json.loads((out / "result.json").read_text())
    assert doc["subjects"][0]["levels"][0]["held"] is True
    report = (out / "report.md").read_text()
    assert "Last level that held: 4 streams" in report
    assert (out / "plots" / "timeline-in-process-4.png").stat().st_size > 1000


async def test_listen_only_run_reports_read_batching(
    serve: Any, make_settings: Any, record_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings()
    settings.session.read_batch_min_streams = 0  # batch even these 4 streams
    settings.session.read_batch_busy = 0.001  # ... and any load is a short core: go deep
    async with serve(settings=settings) as server:
        cfg = _config(
            tmp_path, f"{server.url}/stream", verify=True, record_dir=record_dir, duration_s=3.0
        )
        result = await run_loadtest(cfg)
    (lv,) = result.subjects[0].levels
    assert lv.failures == [] and lv.held
    # Batched from the server's first tick with 10+ frames on (a stream may be switched
    # back for a while when a read is late, so not necessarily all 4 at one scrape);
    # every frame still arrived.
    assert lv.server_read_batched_max is not None and 1 <= lv.server_read_batched_max <= 4
    assert lv.server_read_batch_stalls is not None
    assert lv.server_frames_lost == 0
    assert lv.recordings is not None and lv.recordings.exact == 4
    assert lv.qoe_grade == "n/a"  # a recorder sends nothing back to hear
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Read batching: when busy, streamserver reads a listen-only stream" in report
    assert "at 4 streams up to " in report and "streams at a time were read that" in report
    # Deep from the second tick on, and still sample-exact (above).
    assert lv.server_read_batch_depth_max == 10
    assert "(10 frames per wake-up while the core was short)" in report


async def test_echo_run_reports_when_the_server_paired_its_writes(
    serve: Any, make_settings: Any, tmp_path: Path
) -> None:
    routes = {"/stream": {"handlers": ["echo"], "bidirectional": True}}
    settings = make_settings(routes=routes)
    # Any load counts as busy here: pairing starts after two ticks (1 s) and stays on.
    settings.session.send_batch_busy = 0.001
    settings.session.send_batch_min_streams = 0
    async with serve(settings=settings) as server:
        cfg = _config(tmp_path, f"{server.url}/stream", echo=True, duration_s=3.0)
        result = await run_loadtest(cfg)
    (lv,) = result.subjects[0].levels
    assert lv.failures == [] and lv.held
    assert lv.server_paired_samples and max(s for _, s, _ in lv.server_paired_samples) == 1.0
    assert lv.server_paired_s is not None and lv.server_paired_s >= 1.0
    assert lv.server_loop_utilisation_max is not None and lv.server_loop_utilisation_max > 0
    assert lv.echo_matched == lv.frames_sent  # paired, and nothing lost
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Write pairing: when its core is short" in report
    assert "at 4 streams it did for " in report


def test_verify_recordings_finds_missing_short_and_different_files(tmp_path: Path) -> None:
    reference = np.arange(-800, 800, dtype=np.int16)  # 10 frames of 160 samples
    streams = [StreamRecord(f"c{i}", f"s{i}", 10, True, 1000, False, None) for i in range(4)]
    for i, data in enumerate([reference, reference[:-1], reference.copy()]):
        if i == 2:
            data[1234] += 1
        (tmp_path / f"c{i}").mkdir()
        sf.write(str(tmp_path / f"c{i}" / f"s{i}.inbound.wav"), data, 8000, subtype="PCM_16")
    r = verify_recordings(tmp_path, streams, reference, MULAW)
    assert (r.checked, r.exact, r.missing, r.mismatched) == (4, 1, 1, 2)
    assert not r.ok
    assert any("first at 1234" in p for p in r.problems)
    assert any("1599 samples, expected 1600" in p for p in r.problems)


async def test_refused_streams_fail_the_level(serve: Any, tmp_path: Path) -> None:
    async with serve() as server:
        # A route that does not exist: every upgrade is refused with 404.
        cfg = _config(tmp_path, f"{server.url}/nowhere", streams=2, plots=False)
        result = await run_loadtest(cfg)
    lv = result.subjects[0].levels[0]
    assert (lv.connected, lv.failed) == (0, 2)
    assert not lv.held and result.exit_code == 1
    assert any("HTTP 404" in e for e in lv.errors)


async def test_a_lagging_generator_makes_the_run_invalid(serve: Any, tmp_path: Path) -> None:
    async with serve() as server:
        cfg = _config(
            tmp_path,
            f"{server.url}/stream",
            streams=1,
            duration_s=0.3,
            plots=False,
            thresholds=Thresholds(max_lateness_p99_ms=0.000001),
        )
        result = await run_loadtest(cfg)
    lv = result.subjects[0].levels[0]
    assert not lv.valid and not lv.held
    assert lv.failures[0].startswith("INVALID")
    assert result.exit_code == 3


def test_cli_ladder_with_processes_against_a_started_server(tmp_path: Path) -> None:
    """The script starts `streamserver serve` per step, splits the streams over two
    generator processes, streams L16/16k on both tracks and verifies every recording."""
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "loadtest.py"),
        "--ladder",
        "2,4",
        "--duration",
        "1",
        "--ramp",
        "0.2",
        "--processes",
        "2",
        "--handlers",
        "recorder",
        "--content-type",
        "audio/x-l16;rate=16000",
        "--tracks",
        "both",
        "--verify-recordings",
        "--out",
        str(out),
        "--quiet",
        *LOOSE_FLAGS,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "last level that held: 4 streams" in proc.stdout
    doc = msgspec.json.decode((out / "result.json").read_bytes())
    levels = doc["subjects"][0]["levels"]
    assert [lv["streams"] for lv in levels] == [2, 4]
    for lv in levels:
        assert lv["held"], lv["failures"]
        assert lv["frames_sent"] == lv["streams"] * 50 * 2  # both tracks
        assert lv["server_frames_received"] == lv["frames_sent"]
        assert lv["recordings"]["exact"] == lv["streams"] * 2
        assert lv["cpu_mean_pct"] is not None
    assert (out / "plots" / "ladder.png").exists()
    assert not (out / "recordings" / "streamserver-recorder-2").exists()  # cleaned up


def test_cli_side_by_side_with_the_websockets_baseline(tmp_path: Path) -> None:
    """--compare-cmd runs the same level against another server command (here the bare
    websockets baseline script, which has no /metrics) and reports both."""
    out = tmp_path / "out"
    baseline = f"{sys.executable} {REPO / 'scripts' / 'ws_baseline_server.py'}"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "loadtest.py"),
        "-n",
        "3",
        "--duration",
        "0.6",
        "--ramp",
        "0.1",
        "--handlers",
        "recorder,echo",
        "--verify-recordings",
        "--compare-cmd",
        f"{baseline} --port {{port}} --record-dir {{record_dir}} --echo",
        "--compare-name",
        "baseline",
        "--out",
        str(out),
        "--no-plots",
        "--quiet",
        *LOOSE_FLAGS,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = msgspec.json.decode((out / "result.json").read_bytes())
    ours, theirs = doc["subjects"]
    assert theirs["name"] == "baseline"
    for sub in (ours, theirs):
        (lv,) = sub["levels"]
        assert lv["held"], lv["failures"]
        assert lv["echo_matched"] == lv["frames_sent"] == 3 * 30
        assert lv["recordings"]["exact"] == 3
    assert ours["levels"][0]["server_metrics"] is True
    assert theirs["levels"][0]["server_metrics"] is False  # the baseline has no /metrics
    assert "## Side by side" in (out / "report.md").read_text()
