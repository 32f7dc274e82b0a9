"""The load-test plots read on their own: every panel has a title, labelled axes with
units, legends naming every line (RSS included), axes from 0, and a log axis (when the
spread needs one) ticked with plain numbers, never just "10⁰"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

import matplotlib.pyplot as plt

from streamserver.loadtest import plots
from streamserver.loadtest.report import read_batching_note
from streamserver.loadtest.results import LevelResult


def _level(rtt_p99: float) -> LevelResult:
    tl = [
        {
            "t": float(t),
            "active": 50,
            "frames_per_s": 2500.0,
            "rtt_p50": 0.2,
            "rtt_p90": 0.5,
            "rtt_p99": rtt_p99,
            "gap_p99": 1.0,
            "lateness_p99": 1.2,
        }
        for t in range(1, 6)
    ]
    return LevelResult(
        subject="streamserver",
        streams=50,
        duration_s=5.0,
        burst=False,
        processes=1,
        held=True,
        timeline=tl,
        cpu_samples=[(t / 2, 40.0, 60.8 + t * 0.05) for t in range(1, 11)],
        server_lag_samples=[(float(t), 1.0, 50.0) for t in range(1, 6)],
        rss_per_stream_kib=9.5,
    )


def _figure(monkeypatch: pytest.MonkeyPatch, lv: LevelResult, tmp_path: Path) -> Any:
    saved: list[Any] = []
    monkeypatch.setattr(plt, "close", saved.append)
    path = tmp_path / "t.png"
    plots.timeline_plot(lv, path)
    assert path.stat().st_size > 10_000
    return saved[0]


@pytest.mark.parametrize("rtt_p99", [1.5, 800.0])
def test_every_panel_is_labelled_and_starts_at_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rtt_p99: float
) -> None:
    fig = _figure(monkeypatch, _level(rtt_p99), tmp_path)
    fig.canvas.draw()
    main = [ax for ax in fig.axes if ax.get_title()]
    assert len(main) == 4
    labels: list[str] = []
    for ax in fig.axes:
        assert ax.get_ylabel(), "every axis has a label"
        if ax.get_yscale() == "linear":
            assert ax.get_ylim()[0] == 0
        else:
            ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
            assert len(ticks) >= 3
            assert all("10^" not in t and "mathdefault" not in t for t in ticks)
        legend = ax.get_legend()
        if legend is not None:
            labels += [t.get_text() for t in legend.get_texts()]
    assert any("RSS" in lab and "KiB per stream" in lab for lab in labels)
    assert any("open streams" in lab for lab in labels)
    assert any("frames sent per second" in lab for lab in labels)
    assert any("ms" in ax.get_ylabel() for ax in main)
    assert main[-1].get_xlabel().endswith("(s)")
    # the log axis only when the spread needs it
    assert (main[0].get_yscale() == "log") == (rtt_p99 > 100)


def test_read_batching_in_plain_words() -> None:
    idle = LevelResult("s", 50, 5.0, False, 1)
    idle.server_read_batched_max, idle.server_read_batch_stalls = 0, 0
    busy = LevelResult("s", 800, 5.0, False, 1)
    busy.server_read_batched_max, busy.server_read_batch_stalls = 700, 3
    text = read_batching_note([idle, busy])
    assert "batched," not in text and "stall releases" not in text
    assert "at 50 streams it was not used" in text
    assert "up to 700 streams at a time" in text and "3 times a stream that paused" in text
