"""PNG plots of a load test (matplotlib, the optional ``plots`` extra).

- ``timeline-<server>-<N>.png`` per level: echo round trip and generator lateness
  percentiles, server CPU %, RSS and open streams over time.
- ``ladder.png`` when there is more than one level: capacity per step, each server side
  by side (server CPU %, echo p99 and generator lateness p99 against N, failed steps marked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt

from .results import LevelResult, RunResult, file_slug

__all__ = ["write_plots"]


def _timeline(lv: LevelResult, path: Path) -> None:
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    tl = lv.timeline
    t = [p["t"] for p in tl]

    def series(key: str) -> tuple[list[float], list[float]]:
        xs = [p["t"] for p in tl if key in p]
        return xs, [p[key] for p in tl if key in p]

    for key, label, style in (
        ("rtt_p50", "echo rtt p50", "-"),
        ("rtt_p90", "echo rtt p90", "-"),
        ("rtt_p99", "echo rtt p99", "-"),
        ("gap_p99", "return gap p99", ":"),
        ("lateness_p99", "generator lateness p99", "--"),
    ):
        xs, ys = series(key)
        if xs:
            ax1.plot(xs, ys, style, label=label)
    ax1.set_ylabel("ms")
    ax1.set_yscale("symlog", linthresh=1.0)
    ax1.set_ylim(bottom=0)
    ax1.set_title(f"{lv.subject}: {lv.streams} streams" + ("" if lv.held else " (failed)"))
    ax1.grid(True, alpha=0.3)
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(loc="upper left", fontsize="small")

    if lv.cpu_samples:
        ax2.plot(
            [s[0] for s in lv.cpu_samples], [s[1] for s in lv.cpu_samples], label="server CPU %"
        )
        ax2b = ax2.twinx()
        ax2b.plot(
            [s[0] for s in lv.cpu_samples],
            [s[2] for s in lv.cpu_samples],
            color="tab:gray",
            label="server RSS",
        )
        ax2b.set_ylabel("RSS MiB")
    if lv.server_lag_samples:
        ax2.plot(
            [s[0] for s in lv.server_lag_samples],
            [min(s[1], 100.0) for s in lv.server_lag_samples],
            ":",
            color="tab:red",
            label="server loop lag ms (capped at 100)",
        )
        ax2.legend(loc="upper left", fontsize="small")
    ax2.set_ylabel("server CPU % of a core")
    ax2.set_ylim(0, 110)
    ax2.grid(True, alpha=0.3)

    ax3.plot(t, [p["active"] for p in tl], label="open streams")
    ax3.set_ylabel("open streams")
    ax3b = ax3.twinx()
    ax3b.plot(t, [p["frames_per_s"] for p in tl], color="tab:orange", label="frames/s sent")
    ax3b.set_ylabel("frames/s sent")
    ax3.set_xlabel("seconds")
    ax3.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ladder(result: RunResult, path: Path) -> None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for sub in result.subjects:
        ns = [lv.streams for lv in sub.levels]
        cpu = [
            lv.cpu_mean_pct if lv.cpu_mean_pct is not None else float("nan") for lv in sub.levels
        ]
        line = ax1.plot(ns, cpu, "o-", label=f"{sub.name} CPU %")[0]
        color = line.get_color()
        bad: list[Any] = [lv for lv in sub.levels if not lv.held]
        if bad:
            ax1.plot(
                [lv.streams for lv in bad],
                [lv.cpu_mean_pct or 0 for lv in bad],
                "x",
                color="red",
                markersize=12,
            )
        rtt = [lv.rtt_ms.p99 if lv.rtt_ms else float("nan") for lv in sub.levels]
        late = [lv.lateness_ms.p99 if lv.lateness_ms else float("nan") for lv in sub.levels]
        ax2.plot(ns, rtt, "o-", color=color, label=f"{sub.name} echo p99")
        ax2.plot(ns, late, "s--", color=color, alpha=0.6, label=f"{sub.name} gen lateness p99")
    th = result.settings["thresholds"]
    ax1.axhline(th["max_cpu_pct"], color="red", alpha=0.3)
    ax1.set_ylabel("server CPU % of one core")
    ax1.set_title("capacity per ladder step (x = step failed)")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize="small")
    ax2.axhline(th["max_rtt_p99_ms"], color="red", alpha=0.3)
    ax2.set_ylabel("ms")
    ax2.set_yscale("symlog", linthresh=1.0)
    ax2.set_ylim(bottom=0)
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
            _timeline(lv, p)
            paths.append(p)
    if sum(len(s.levels) for s in result.subjects) > 1:
        p = plot_dir / "ladder.png"
        _ladder(result, p)
        paths.append(p)
    return paths
