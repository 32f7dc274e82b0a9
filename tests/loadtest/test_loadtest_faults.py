"""The load tester under frame faults: every stream walks its own seeded plan, and the
server's recordings still verify (dropped frames are exact silence)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from streamserver.loadtest import run_loadtest
from streamserver.loadtest.cli import build_config
from streamserver.loadtest.config import LoadTestConfig, Subject, Thresholds, frame_faults
from streamserver.netfaults import NetFaults

LOOSE = Thresholds(
    max_lateness_p99_ms=200.0, max_rtt_p99_ms=2000.0, max_cpu_pct=1000.0, max_loop_lag_ms=5000.0
)


async def test_a_run_with_frame_faults_verifies_every_recording(
    serve: Any, record_dir: Path, tmp_path: Path
) -> None:
    faults = NetFaults(
        drop_pct=5, duplicate_pct=5, reorder_pct=10, reorder_window=3, jitter_ms=30, seed=4
    )
    async with serve() as server:
        cfg = LoadTestConfig(
            subjects=[Subject("in-process", url=f"{server.url}/stream", pid=os.getpid())],
            streams=4,
            duration_s=1.5,
            ramp_s=0.2,
            tail_s=0.3,
            out_dir=tmp_path / "out",
            progress=None,
            seed=1,
            thresholds=LOOSE,
            faults=faults,
            verify=True,
            record_dir=record_dir,
        )
        result = await run_loadtest(cfg)
        m = server.metrics
    (lv,) = result.subjects[0].levels
    assert lv.failures == [] and lv.connected == 4
    # Each stream drew its own drops: 4 recordings, each exact with its own silences.
    assert lv.recordings is not None and (lv.recordings.checked, lv.recordings.exact) == (4, 4)
    assert m.duplicates > 0 and m.gaps > 0 and m.reordered > 0
    assert result.exit_code == 0


def test_connection_faults_and_unverifiable_runs_are_refused() -> None:
    with pytest.raises(ValueError, match="frame faults only"):
        frame_faults("vanish=2", "plivo", verify=False)
    with pytest.raises(ValueError, match="Vonage frames carry no numbers"):
        frame_faults("drop=1", "vonage", verify=True)
    with pytest.raises(ValueError, match="drop_pct"):
        frame_faults("drop=101", "plivo", verify=False)
    seeded = frame_faults("drop=1", "twilio", verify=True)
    assert seeded is not None and seeded.seed is not None  # the report repeats the run
    assert frame_faults("", "plivo", verify=True) is None


def test_the_cli_takes_faults(tmp_path: Path) -> None:
    from streamserver.cli import build_parser

    args = build_parser().parse_args(
        ["loadtest", "--url", "ws://127.0.0.1:9/stream", "--faults", "dup=3,seed=9"]
    )
    cfg = build_config(args)
    assert cfg.faults == NetFaults(duplicate_pct=3, seed=9)
