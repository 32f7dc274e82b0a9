"""What a load test measured: one level, a server's ladder, the whole run.

The runner fills these in; the report, the plots and the JSON output read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .stats import LatencySummary
from .verify import VerifyResult

__all__ = ["LevelResult", "RunResult", "SubjectResult", "file_slug"]


def file_slug(name: str) -> str:
    """``name`` (a server's) as a safe part of a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "server"


@dataclass
class LevelResult:
    """One level: N streams against one server, measured and judged."""

    subject: str
    streams: int
    duration_s: float
    burst: bool
    processes: int
    held: bool = False
    valid: bool = True
    failures: list[str] = field(default_factory=list)
    # Generator
    connected: int = 0
    failed: int = 0
    abnormal: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    frames_sent: int = 0
    bytes_sent: int = 0
    play_received: int = 0
    other_received: int = 0
    echo_matched: int = 0
    echo_unmatched: int = 0
    write_paused: int = 0
    lateness_ms: LatencySummary | None = None
    rtt_ms: LatencySummary | None = None
    return_gap_ms: LatencySummary | None = None
    #: Tail stability: the highest echo round-trip p99 of any 1 s window while every
    #: stream ran, and that window's start (s into the level).
    rtt_worst_window_p99_ms: float | None = None
    rtt_worst_window_t: float | None = None
    #: steady seconds left out of the worst window: the generator's own send lateness p99
    #: was above max_lateness_p99_ms in them (its stall, not the server's)
    rtt_windows_generator_late: int = 0
    generator_cpu_pct: float | None = None
    # What the caller heard (verdict.py: the one-line QoE verdict and its grade)
    qoe_grade: str = ""
    qoe: str = ""
    #: Stream start sent -> first audio back, one value per call that heard any.
    first_audio_ms: LatencySummary | None = None
    #: Connected calls that never heard any audio.
    first_audio_missing: int = 0
    #: Bot profile: caller speech onset sent -> the server's clear received, per turn.
    barge_in_ms: LatencySummary | None = None
    #: Turns where the caller spoke over the bot and no clear came.
    barge_in_missed: int = 0
    #: Clears that answered no speech (before the caller spoke, twice in a turn).
    unexpected_clears: int = 0
    clears: int = 0
    checkpoints_answered: int = 0
    dtmf_sent: int = 0
    #: The simulated 60 ms playout buffer: minutes of the bot's speech played out, ticks
    #: with an empty buffer in them, per minute, calls with any, and the longest silence
    #: inside the bot's speech (the worst call; p99 over the calls that heard audio).
    playout_minutes: float = 0.0
    underruns: int = 0
    underruns_per_min: float | None = None
    streams_with_underruns: int = 0
    longest_silence_ms: float | None = None
    longest_silence_p99_ms: float | None = None
    # Server
    server_metrics: bool = False
    server_frames_received: int | None = None
    server_frames_lost: int | None = None
    server_gaps: int | None = None
    server_handler_dropped_samples: int | None = None
    server_frames_invalid: int | None = None
    server_frames_sent: int | None = None
    #: streamserver's read batching: most streams batched at once, stall releases.
    server_read_batched_max: int | None = None
    server_read_batch_stalls: int | None = None
    #: ... and the most frames per wake-up (deeper while the server's core was short)
    server_read_batch_depth_max: int | None = None
    #: Largest event-loop lag while all streams ran (opening and closing storms excluded).
    server_loop_lag_max_ms: float | None = None
    server_loop_lag_max_all_ms: float | None = None
    #: streamserver's stall watchdog (``[server] stall_warn_s``): loop stalls over the
    #: level, by kind ("blocked": one call held the loop, the server log names it; "busy")
    server_stalls: dict[str, int] | None = None
    #: The lag samples are the worst tick of the last 1.5 s (the server's
    #: ``event_loop_lag_recent_max_seconds``), not only the latest tick's.
    server_lag_recent: bool = False
    #: streamserver's write pairing (``[session] send_batch_busy``): seconds it was on,
    #: over the level and while every stream ran, and the busiest loop seen (share of a CPU).
    server_paired_s: float | None = None
    server_paired_steady_s: float | None = None
    server_loop_utilisation_max: float | None = None
    cpu_mean_pct: float | None = None
    cpu_max_pct: float | None = None
    rss_base_mib: float | None = None
    rss_peak_mib: float | None = None
    rss_per_stream_kib: float | None = None
    recordings: VerifyResult | None = None
    # Timing (seconds since the level's start)
    t_all_open: float | None = None
    t_first_done: float | None = None
    t_end: float = 0.0
    timeline: list[dict[str, float]] = field(default_factory=list)
    #: (t, CPU % of one core, RSS MiB) of the server every 0.5 s
    cpu_samples: list[tuple[float, float, float]] = field(default_factory=list)
    #: (t, event-loop lag ms, streams active) from the server's /metrics every second
    server_lag_samples: list[tuple[float, float, float]] = field(default_factory=list)
    #: (t, share of the workers pairing writes, mean loop utilisation or None), per second
    server_paired_samples: list[tuple[float, float, float | None]] = field(default_factory=list)
    server_log: str | None = None
    server_cmd: str | None = None


@dataclass
class SubjectResult:
    """One server under test: its levels (a ladder: in order) and the largest that held."""

    name: str
    cmd: str | None
    url: str | None
    levels: list[LevelResult] = field(default_factory=list)
    #: Largest N that held (ladder: before the first failure).
    held_max: int | None = None
    #: Why the ladder stopped ("" when every step held).
    stopped_by: str = ""


@dataclass
class RunResult:
    """A whole run: every server under test, with what it ran on and how."""

    started_at: str
    command_line: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    subjects: list[SubjectResult]
    out_dir: str
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 every run held (a ladder: at least one step), 3 the generator lagged, else 1."""
        for s in self.subjects:
            if not s.levels:
                return 1
            if all(not lv.valid for lv in s.levels):
                return 3
            if s.held_max is None:
                return 1
        return 0
