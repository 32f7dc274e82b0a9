"""The load-test plots read on their own: every panel has a title, labelled axes with
units, legends naming every line (RSS included), axes from 0, and a log axis (when the
spread needs one) ticked with plain numbers, never just "10⁰". What the callers heard
has its panel in the timeline and its own per-level figure next to the server's CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

import matplotlib.pyplot as plt

from streamserver.loadtest import plots
from streamserver.loadtest.report import read_batching_note, write_pairing_note
from streamserver.loadtest.results import LevelResult, RunResult, SubjectResult
from streamserver.loadtest.stats import LatencySummary


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
            "underruns_per_s": 0.0 if t != 3 else 2.0,
            **({"barge_in_p50": 110.0, "barge_in_p99": 180.0} if t % 2 else {}),
            **({"first_audio_p99": 4.0} if t == 1 else {}),
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


def _figure(monkeypatch: pytest.MonkeyPatch, draw: Any, tmp_path: Path) -> Any:
    saved: list[Any] = []
    monkeypatch.setattr(plt, "close", saved.append)
    path = tmp_path / "t.png"
    draw(path)
    assert path.stat().st_size > 10_000
    return saved[0]


def _labels(fig: Any) -> list[str]:
    """Every legend entry; asserts every axis is labelled and a linear one starts at 0."""
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
    return labels


@pytest.mark.parametrize("rtt_p99", [1.5, 800.0])
def test_every_panel_is_labelled_and_starts_at_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rtt_p99: float
) -> None:
    lv = _level(rtt_p99)
    fig = _figure(monkeypatch, lambda p: plots.timeline_plot(lv, p), tmp_path)
    fig.canvas.draw()
    main = [ax for ax in fig.axes if ax.get_title()]
    assert len(main) == 5
    labels = _labels(fig)
    assert any("RSS" in lab and "KiB per stream" in lab for lab in labels)
    assert any("open streams" in lab for lab in labels)
    assert any("frames sent per second" in lab for lab in labels)
    assert any("ms" in ax.get_ylabel() for ax in main)
    assert main[-1].get_xlabel().endswith("(s)")
    # the log axis only when the spread needs it
    assert (main[0].get_yscale() == "log") == (rtt_p99 > 100)
    # what the callers heard, with its units
    heard = main[2]
    assert "callers heard" in heard.get_title() and "(ms)" in heard.get_ylabel()
    assert any("barge-in" in lab and "p99" in lab for lab in labels)
    assert any("first audio" in lab for lab in labels)
    assert any("underruns" in lab for lab in labels)


@pytest.mark.parametrize("ladder", [[50], [50, 100, 200]])
def test_what_the_callers_heard_per_level_next_to_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ladder: list[int]
) -> None:
    levels = []
    for i, n in enumerate(ladder):
        lv = _level(1.5)
        lv.streams, lv.cpu_mean_pct = n, 30.0 * (i + 1)
        lv.qoe_grade = ("good", "degraded", "bad")[i]
        lv.first_audio_ms = LatencySummary(n, 3.0, 2.0, 4.0, 5.0 * (i + 1), 6.0, 7.0)
        lv.barge_in_ms = LatencySummary(n, 90.0, 80.0, 100.0, 150.0 * (i + 1), 400.0, 500.0)
        lv.underruns_per_min, lv.longest_silence_p99_ms, lv.longest_silence_ms = i, 20.0 * i, 40.0
        levels.append(lv)
    result = RunResult("now", "cmd", {}, {}, [SubjectResult("ours", None, None, levels)], ".")
    fig = _figure(monkeypatch, lambda p: plots.heard_plot(result, p), tmp_path)
    fig.canvas.draw()
    main = [ax for ax in fig.axes if ax.get_title()]
    assert len(main) == 3
    labels = _labels(fig)
    assert "CPU" in main[0].get_ylabel() and "(ms)" in main[1].get_ylabel()
    assert main[-1].get_xlabel().startswith("concurrent streams")
    # each level's CPU point carries its verdict
    words = [t.get_text() for t in main[0].texts]
    assert words == ["good", "degraded", "bad"][: len(ladder)]
    for want in ("server CPU", "first audio p99", "barge-in p50", "underruns per minute"):
        assert any(want in lab for lab in labels), want
    assert any("longest silence" in lab for lab in labels)


def test_read_batching_in_plain_words() -> None:
    idle = LevelResult("s", 50, 5.0, False, 1)
    idle.server_read_batched_max, idle.server_read_batch_stalls = 0, 0
    busy = LevelResult("s", 800, 5.0, False, 1)
    busy.server_read_batched_max, busy.server_read_batch_stalls = 700, 3
    text = read_batching_note([idle, busy])
    assert "batched," not in text and "stall releases" not in text
    assert "at 50 streams it was not used" in text
    assert "up to 700 streams at a time" in text and "3 times a stream that paused" in text
    assert "while the core was short" not in text
    busy.server_read_batch_depth_max = 6
    assert "read that way (6 frames per wake-up while the core was short), and 3 times" in (
        read_batching_note([busy])
    )


def test_write_pairing_in_plain_words() -> None:
    idle = LevelResult("s", 500, 5.0, False, 1)
    idle.server_paired_s, idle.server_paired_steady_s = 0.0, 0.0
    idle.server_loop_utilisation_max = 0.62
    busy = LevelResult("s", 1250, 5.0, False, 1)
    busy.server_paired_s, busy.server_paired_steady_s = 17.4, 12.0
    busy.server_loop_utilisation_max = 0.99
    text = write_pairing_note([idle, busy])
    assert text.startswith("Write pairing:") and "up to 20 ms" in text
    assert "at 500 streams it never did; its loop used at most 62% of a core" in text
    assert "at 1250 streams it did for 17 s (12 s of them while every stream ran)" in text


def test_cpu_panel_shows_when_the_server_paired_its_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lv = _level(1.5)
    lv.server_paired_samples = [(float(t), 1.0 if t in (3, 4) else 0.0, 0.9) for t in range(1, 6)]
    fig = _figure(monkeypatch, lambda p: plots.timeline_plot(lv, p), tmp_path)
    assert any("pairing its writes" in lab for lab in _labels(fig))
    lv.server_paired_samples = [(float(t), 0.0, 0.5) for t in range(1, 6)]
    fig = _figure(monkeypatch, lambda p: plots.timeline_plot(lv, p), tmp_path)
    assert not any("pairing" in lab for lab in _labels(fig))  # never on: nothing drawn
