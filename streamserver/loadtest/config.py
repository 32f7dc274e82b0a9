"""What a load test runs: the servers under test, the load, the audio and the service levels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..netfaults import NetFaults
from .bot import BotScript
from .wire import SAMPLES_DIR

__all__ = ["PROFILES", "LoadTestConfig", "QoeLimits", "Subject", "Thresholds", "frame_faults"]

#: What the simulated callers do: ``echo`` streams the audio file (and measures the echo
#: round trip when the server echoes); ``bot`` talks to a bot that plays a prompt and
#: stops it when the caller speaks (barge-in).
PROFILES = ("echo", "bot")


@dataclass
class Thresholds:
    """Service levels a level must meet to *hold*."""

    #: The generator's own send lateness p99; above it the level is invalid.
    max_lateness_p99_ms: float = 5.0
    max_rtt_p99_ms: float = 50.0
    #: Mean CPU of the server (% of one core) while all streams run.
    max_cpu_pct: float = 95.0
    #: Largest event-loop lag the server reports in /metrics.
    max_loop_lag_ms: float = 100.0
    #: Server memory per stream (RSS growth / streams); None: report only.
    max_rss_kib_per_stream: float | None = None


@dataclass
class QoeLimits:
    """Where the one-line verdict puts what the caller heard: each pair is (good up to,
    degraded up to); beyond the second a level sounds *bad*."""

    first_audio_p99_ms: tuple[float, float] = (300.0, 1000.0)
    barge_in_p99_ms: tuple[float, float] = (300.0, 600.0)
    #: Turns where the bot talked on over the caller, % of the turns measured.
    barge_in_missed_pct: tuple[float, float] = (0.0, 1.0)
    underruns_per_min: tuple[float, float] = (1.0, 10.0)
    #: The longest silence inside the bot's speech, p99 over the calls.
    longest_silence_ms: tuple[float, float] = (60.0, 200.0)
    #: Echo profile with an echoing server: the round trip, p99.
    echo_rtt_p99_ms: tuple[float, float] = (50.0, 150.0)
    #: Tail stability: the worst 1 s window's echo p99 over the run's p99.
    tail_ratio: tuple[float, float] = (2.0, 4.0)


@dataclass
class Subject:
    """A server under test: a command to start (``{host}``, ``{port}``, ``{record_dir}`` are
    filled in) or the URL of one already running."""

    name: str
    cmd: str | None = None
    url: str | None = None
    pid: int | None = None


@dataclass
class LoadTestConfig:
    """Everything a load test run needs; the CLI builds one from its flags."""

    # Target
    subjects: list[Subject] = field(default_factory=list)
    path: str = "/stream"
    #: http://.../metrics of an external server; "" disables scraping; None: same port.
    metrics_url: str | None = None
    server_cpus: list[int] | None = None
    generator_cpus: list[int] | None = None
    #: Real-time scheduling for the generator (see EnginePlan.realtime).
    generator_rt: bool = False
    record_dir: Path | None = None
    keep_recordings: bool = False
    # Load
    streams: int = 100
    duration_s: float = 30.0
    #: Seconds over which a level opens its streams; None: ``streams / ramp_rate``.
    ramp_s: float | None = None
    #: New streams per second when ``ramp_s`` is None (a call-arrival rate, not a storm).
    ramp_rate: float = 100.0
    ladder: list[int] | None = None
    burst: bool = False
    processes: int = 1
    slot_ms: float = 1.0
    seed: int | None = None
    #: Frame faults on every stream (drop, duplicate, reorder, jitter, bursts, drift).
    faults: NetFaults | None = None
    # Audio
    audio: Path = SAMPLES_DIR / "hello-8k.wav"
    content_type: str = "audio/x-mulaw;rate=8000"
    #: The provider the streams play: plivo, twilio, telnyx, exotel or vonage.
    dialect: str = "plivo"
    tracks: str = "inbound"
    #: One of :data:`PROFILES`.
    profile: str = "echo"
    bot: BotScript = field(default_factory=BotScript)
    echo: bool = False
    verify: bool = False
    extra_headers: str = ""
    auth_token: str | None = None
    tail_s: float = 0.5
    thresholds: Thresholds = field(default_factory=Thresholds)
    qoe_limits: QoeLimits = field(default_factory=QoeLimits)
    # Output
    out_dir: Path = Path("loadtest-results")
    plots: bool = True
    progress: TextIO | None = None
    command_line: str = ""


def frame_faults(text: str, dialect: str, *, verify: bool) -> NetFaults | None:
    """``--faults``: the frame faults of a run, seeded once (the report's text of them
    repeats the run); None for none. ``ValueError`` for what the load tester cannot do."""
    if not text:
        return None
    faults = NetFaults.parse(text).seeded()
    if faults.connection_faults:
        raise ValueError(
            "--faults: the load tester applies frame faults only (drop, dup, reorder, "
            "jitter, burst, drift); use streamserver replay for vanish, reconnect, second, "
            "slow-read"
        )
    if verify and dialect == "vonage":
        raise ValueError(
            "--verify-recordings with --faults: Vonage frames carry no numbers, so what the "
            "server recorded under faults is what arrived, not what was sent"
        )
    return faults
