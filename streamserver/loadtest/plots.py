"""PNG plots of a load test (matplotlib, the optional ``plots`` extra).

- ``timeline-<server>-<N>.png`` per level, five panels over time, each answering one
  question: how fast does the echo come back; did anyone fall behind (generator lateness,
  return gaps, the server's event-loop delay); what did the callers hear (first audio,
  barge-in, playout underruns); how busy is the server (CPU and memory); how much load
  was there (open streams, frames sent per second).
- ``ladder.png`` when there is more than one level: capacity per step, each server side
  by side (server CPU %, echo p99 and generator lateness p99 against N, failed steps marked).
- ``heard.png``: what the callers heard per level, next to the server's CPU: the verdict
  on each level's CPU point, first-audio and barge-in latency (p50, p99), underruns per
  minute and the longest silence through the simulated 60 ms jitter buffer.

Every axis is labelled with its unit and starts at 0, so a flat line looks flat; a
millisecond axis switches to a log scale with plain-number ticks only when its values
span more than two decades.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from .results import LevelResult, RunResult, file_slug

__all__ = ["heard_plot", "timeline_plot", "write_plots"]

#: Log-scale ticks for millisecond axes, labelled as plain numbers (never 10⁰).
_MS_TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def _plain(v: float, _pos: object = None) -> str:
    return f"{v:g}"


def _ms_axis(ax: Axes, values: Iterable[float], label: str) -> None:
    """A millisecond axis from 0; log (plain-number ticks) only for a wide spread."""
    vals = [v for v in values if v == v and v > 0]  # drop NaN and zeros
    ax.set_ylabel(label)
    if vals and max(vals) > 50 and max(vals) / max(min(vals), 0.1) > 100:
        ax.set_yscale("log")
        lo, hi = max(min(vals), 0.1), max(vals)
        steps = _MS_TICKS if hi / lo <= 1000 else [t for t in _MS_TICKS if f"{t:g}"[0] == "1"]
        ticks = [t for t in steps if lo / 2 <= t <= hi * 2]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(_plain))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_ylim(lo / 2, hi * 2)
    else:
        ax.set_ylim(0, max(vals) * 1.15 if vals else 1.0)


def _legend(*axes: Axes) -> None:
    """One legend for a panel (with its twin axis' lines), right of it: never over data."""
    handles: list[Any] = []
    labels: list[str] = []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if handles:
        axes[0].legend(
            handles, labels, loc="upper left", bbox_to_anchor=(1.09, 1.0), fontsize="small"
        )


def timeline_plot(lv: LevelResult, path: Path) -> None:
    """The five-panel timeline of one level, written to ``path`` (PNG)."""
    fig, (ax1, ax2, axq, ax3, ax4) = plt.subplots(5, 1, figsize=(14, 15), sharex=True)
    tl = lv.timeline

    def series(key: str) -> tuple[list[float], list[float]]:
        xs = [p["t"] for p in tl if key in p]
        return xs, [p[key] for p in tl if key in p]

    fig.suptitle(
        f"{lv.subject}: {lv.streams} streams"
        + (" - held every service level" if lv.held else " - FAILED a service level")
    )

    # 1. How fast does the echo come back?
    shown: list[float] = []
    for key, label in (
        ("rtt_p50", "median (p50)"),
        ("rtt_p90", "p90 (9 in 10 frames faster)"),
        ("rtt_p99", "p99 (99 in 100 frames faster)"),
    ):
        xs, ys = series(key)
        if xs:
            ax1.plot(xs, ys, "-", label=label)
            shown += ys
    ax1.set_title(
        "Echo round trip: time from sending a frame to hearing it back", fontsize="medium"
    )
    _ms_axis(ax1, shown, "round trip (ms)")
    if not shown:
        ax1.text(
            0.5, 0.5, "no echo measured (no echo handler)", ha="center", transform=ax1.transAxes
        )
    _legend(ax1)

    # 2. Did anyone fall behind?
    shown = []
    for key, label, style in (
        ("lateness_p99", "load generator sending late (p99)", "--"),
        ("gap_p99", "extra wait between returned frames (p99)", ":"),
    ):
        xs, ys = series(key)
        if xs:
            ax2.plot(xs, ys, style, label=label)
            shown += ys
    if lv.server_lag_samples:
        lag = [s[1] for s in lv.server_lag_samples]
        ax2.plot(
            [s[0] for s in lv.server_lag_samples],
            lag,
            "-",
            color="tab:red",
            label="server event loop delay (longest per sample)",
        )
        shown += lag
    ax2.set_title(
        "Delays: did the generator or the server fall behind the 20 ms beat?", fontsize="medium"
    )
    _ms_axis(ax2, shown, "delay (ms)")
    _legend(ax2)

    # 3. What did the callers hear?
    _heard_panel(axq, series)

    # 4. How busy is the server?
    if lv.cpu_samples:
        ts = [s[0] for s in lv.cpu_samples]
        ax3.plot(ts, [s[1] for s in lv.cpu_samples], color="tab:blue", label="CPU (left axis)")
        paired = lv.server_paired_samples
        if any(share > 0 for _, share, _ in paired):
            # Each sample covers the second before it.
            ax3.fill_between(
                [t for t, _, _ in paired],
                0,
                110,
                where=[share > 0 for _, share, _ in paired],
                step="pre",
                color="tab:purple",
                alpha=0.15,
                linewidth=0,
                label="server pairing its writes (trading up to 20 ms for CPU)",
            )
        ax3b = ax3.twinx()
        rss = [s[2] for s in lv.cpu_samples]
        per = (
            f", {lv.rss_per_stream_kib:.0f} KiB per stream"
            if lv.rss_per_stream_kib is not None
            else ""
        )
        ax3b.plot(ts, rss, color="tab:gray", label=f"memory, RSS (right axis{per})")
        ax3b.set_ylabel("memory RSS (MiB)")
        ax3b.set_ylim(0, max(rss) * 1.3 if rss else 1.0)
        _legend(ax3, ax3b)
    else:
        ax3.text(
            0.5,
            0.5,
            "server not sampled (started elsewhere, no --server-pid)",
            ha="center",
            transform=ax3.transAxes,
        )
    ax3.set_title("Server load: CPU and memory", fontsize="medium")
    ax3.set_ylabel("CPU (% of one core)")
    ax3.set_ylim(0, 110)

    # 5. How much load was there?
    t = [p["t"] for p in tl]
    ax4.plot(t, [p["active"] for p in tl], color="tab:blue", label="open streams (left axis)")
    ax4.set_ylabel("open streams")
    ax4.set_ylim(0, max([p["active"] for p in tl] + [1]) * 1.15)
    ax4b = ax4.twinx()
    fps = [p["frames_per_s"] for p in tl]
    ax4b.plot(t, fps, color="tab:orange", label="audio frames sent per second (right axis)")
    ax4b.set_ylabel("frames sent per second")
    ax4b.set_ylim(0, max([*fps, 1.0]) * 1.15)
    ax4.set_title("Offered load: streams open and audio frames sent", fontsize="medium")
    _legend(ax4, ax4b)
    ax4.set_xlabel("time since the first stream opened (s)")

    for ax in (ax1, ax2, axq, ax3, ax4):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _heard_panel(ax: Axes, series: Any) -> None:
    """Per window: first audio and barge-in latency (left), underruns (right)."""
    shown: list[float] = []
    # Markers only: a window without a call starting or a turn has no value.
    for key, label, marker, fill in (
        ("first_audio_p99", "first audio after start (p99 of the calls starting)", "o", True),
        ("barge_in_p50", "barge-in: caller speaks -> bot stops (median)", "s", False),
        ("barge_in_p99", "barge-in: caller speaks -> bot stops (p99)", "s", True),
    ):
        xs, ys = series(key)
        if xs:
            face: dict[str, Any] = {} if fill else {"markerfacecolor": "none"}
            ax.plot(xs, ys, marker, linestyle="none", markersize=6, label=label, **face)
            shown += ys
    _ms_axis(ax, shown, "latency (ms)")
    xs, under = series("underruns_per_s")
    axb = ax.twinx()
    axb.plot(xs, under, ":", color="tab:red", label="underruns: 20 ms of silence (right axis)")
    axb.set_ylabel("underruns per second")
    axb.set_ylim(0, max([*under, 1.0]) * 1.3)
    if not shown:
        ax.text(0.5, 0.5, "no audio came back from the server", ha="center", transform=ax.transAxes)
    ax.set_title(
        "What the callers heard: waiting for the bot, and gaps in its speech (60 ms jitter buffer)",
        fontsize="medium",
    )
    _legend(ax, axb)


_GRADE_COLORS = {"good": "tab:green", "degraded": "tab:orange", "bad": "tab:red"}


def heard_plot(result: RunResult, path: Path) -> None:
    """What the callers heard per level, next to the server's CPU, written to ``path``."""
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(12, 11), sharex=True)
    ax3b = ax3.twinx()
    lat: list[float] = []
    under_all: list[float] = []
    silence_all: list[float] = []
    ns_all: list[int] = []
    for sub in result.subjects:
        levels = sub.levels
        ns = [lv.streams for lv in levels]
        ns_all += ns
        tag = f"{sub.name}: " if len(result.subjects) > 1 else ""
        cpu = [_num(lv.cpu_mean_pct) for lv in levels]
        color = ax1.plot(ns, cpu, "o-", label=f"{tag}server CPU")[0].get_color()
        for lv, y in zip(levels, cpu, strict=True):
            word = lv.qoe_grade or "n/a"
            ax1.annotate(
                word,
                (lv.streams, y if y == y else 0.0),
                textcoords="offset points",
                xytext=(0, 9),
                ha="center",
                fontsize="small",
                color=_GRADE_COLORS.get(word, "tab:gray"),
                fontweight="bold",
            )
        for key, label, style in (
            ("first_audio_ms", "first audio", "o"),
            ("barge_in_ms", "barge-in", "s"),
        ):
            for q, dash in (("p50", "--"), ("p99", "-")):
                ys = [_num(getattr(getattr(lv, key), q, None)) for lv in levels]
                if any(y == y for y in ys):
                    face: dict[str, Any] = {"markerfacecolor": "none"} if q == "p50" else {}
                    ax2.plot(ns, ys, style + dash, color=color, label=f"{tag}{label} {q}", **face)
                    lat += ys
        under = [_num(lv.underruns_per_min) for lv in levels]
        under_all += under
        ax3.plot(ns, under, "o-", color=color, label=f"{tag}underruns per minute (left)")
        for key, label, style in (
            ("longest_silence_p99_ms", "longest silence, p99 of calls", "^--"),
            ("longest_silence_ms", "longest silence, worst call", "v:"),
        ):
            ys = [_num(getattr(lv, key)) for lv in levels]
            silence_all += ys
            ax3b.plot(ns, ys, style, color=color, alpha=0.7, label=f"{tag}{label} (right)")
    ax1.set_ylabel("server CPU (% of one core)")
    ax1.set_ylim(0, 120)
    ax1.set_title(
        "Server CPU per level, labelled with what its callers heard (good / degraded / bad)",
        fontsize="medium",
    )
    _legend(ax1)
    _ms_axis(ax2, lat, "latency (ms)")
    ax2.set_title(
        "Waiting for the bot: start -> first audio, caller speaks -> bot stops (barge-in)",
        fontsize="medium",
    )
    _legend(ax2)
    ax3.set_ylabel("underruns per minute of speech")
    ax3.set_ylim(0, max([v for v in under_all if v > 0] + [1.0]) * 1.3)
    ax3b.set_ylabel("longest silence (ms)")
    ax3b.set_ylim(0, max([v for v in silence_all if v > 0] + [100.0]) * 1.3)
    ax3.set_title(
        "Smoothness through a 60 ms jitter buffer: 20 ms underruns and the longest silence",
        fontsize="medium",
    )
    _legend(ax3, ax3b)
    ax3.set_xlabel("concurrent streams (level)")
    ticks = sorted(set(ns_all))
    ax3.xaxis.set_major_locator(FixedLocator(ticks))
    if len(ticks) == 1:
        ax3.set_xlim(ticks[0] * 0.5, ticks[0] * 1.5)
    for ax in (ax1, ax2, ax3):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _num(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _ladder(result: RunResult, path: Path) -> None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    shown: list[float] = []
    for sub in result.subjects:
        ns = [lv.streams for lv in sub.levels]
        cpu = [
            lv.cpu_mean_pct if lv.cpu_mean_pct is not None else float("nan") for lv in sub.levels
        ]
        line = ax1.plot(ns, cpu, "o-", label=f"{sub.name}: server CPU")[0]
        color = line.get_color()
        bad: list[Any] = [lv for lv in sub.levels if not lv.held]
        if bad:
            ax1.plot(
                [lv.streams for lv in bad],
                [lv.cpu_mean_pct or 0 for lv in bad],
                "x",
                color="red",
                markersize=12,
                label=f"{sub.name}: step failed",
            )
        rtt = [lv.rtt_ms.p99 if lv.rtt_ms else float("nan") for lv in sub.levels]
        late = [lv.lateness_ms.p99 if lv.lateness_ms else float("nan") for lv in sub.levels]
        ax2.plot(ns, rtt, "o-", color=color, label=f"{sub.name}: echo round trip p99")
        ax2.plot(
            ns,
            late,
            "s--",
            color=color,
            alpha=0.6,
            label=f"{sub.name}: load generator lateness p99",
        )
        shown += rtt + late
    th = result.settings["thresholds"]
    ax1.axhline(th["max_cpu_pct"], color="red", alpha=0.3, label="CPU limit")
    ax1.set_ylabel("server CPU (% of one core)")
    ax1.set_ylim(0, 110)
    ax1.set_title(
        "Capacity: server CPU per step (x = the step failed a service level)", fontsize="medium"
    )
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize="small")
    ax2.axhline(th["max_rtt_p99_ms"], color="red", alpha=0.3, label="echo p99 limit")
    shown.append(th["max_rtt_p99_ms"])
    _ms_axis(ax2, shown, "milliseconds")
    ax2.set_title("Latency per step", fontsize="medium")
    ax2.set_xlabel("concurrent streams")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_plots(result: RunResult, out_dir: Path) -> list[Path]:
    """Write every plot; return their paths."""
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for sub in result.subjects:
        for lv in sub.levels:
            p = plot_dir / f"timeline-{file_slug(sub.name)}-{lv.streams}.png"
            timeline_plot(lv, p)
            paths.append(p)
    if sum(len(s.levels) for s in result.subjects) > 1:
        p = plot_dir / "ladder.png"
        _ladder(result, p)
        paths.append(p)
    if any(s.levels for s in result.subjects):
        p = plot_dir / "heard.png"
        heard_plot(result, p)
        paths.append(p)
    return paths
