"""Filling a level's result from what was measured.

The generators' results and windows, the CPU/RSS samples of the server and of the
generator, and the server's ``/metrics`` before and after the level (counter deltas) and
during it (event-loop lag, read batching).
"""

from __future__ import annotations

import numpy as np

from ..looplag import RECENT_LAG_S
from .collector import WindowCollector
from .results import LevelResult
from .tally import EngineResult
from .target import ProcSample

__all__ = [
    "METRIC_PREFIX",
    "fill_heard",
    "fill_level",
    "fill_tail",
    "metric_max",
    "metric_mean",
    "metric_sum",
    "sample_metrics",
    "steady_mean",
    "steady_window",
]

#: streamserver's metric names start with this.
METRIC_PREFIX = "streamserver_"


def _values(m: dict[str, float], name: str) -> list[float]:
    """A metric's value in each of its label sets (one per worker on a multi-worker host)."""
    full = METRIC_PREFIX + name
    return [v for k, v in m.items() if k == full or k.startswith(full + "{")]


def _labelled_sum(m: dict[str, float], name: str, label: str, value: str) -> float:
    """Sum of a metric over the label sets with ``label="value"`` (any other labels)."""
    full, want = METRIC_PREFIX + name + "{", f'{label}="{value}"'
    return sum(v for k, v in m.items() if k.startswith(full) and want in k[len(full) :])


def metric_sum(m: dict[str, float], name: str) -> float:
    """Sum of a metric over all its label sets."""
    return sum(_values(m, name))


def metric_mean(m: dict[str, float], name: str) -> float | None:
    """Mean of a metric over its label sets (a gauge per worker); None when absent."""
    vals = _values(m, name)
    return sum(vals) / len(vals) if vals else None


def metric_max(m: dict[str, float], name: str) -> float | None:
    """Largest value of a metric over its label sets; None when absent."""
    vals = _values(m, name)
    return max(vals) if vals else None


def sample_metrics(lv: LevelResult, m: dict[str, float], t: float) -> tuple[float, float, float]:
    """One scrape of the server's ``/metrics`` during a level, ``t`` s into it: read
    batching and write pairing go into ``lv``; returns ``(t, loop lag ms, open streams)``."""
    if _values(m, "streams_read_batched"):  # labelled per worker on a multi-worker host
        batched = round(metric_sum(m, "streams_read_batched"))
        lv.server_read_batched_max = max(lv.server_read_batched_max or 0, batched)
        depth = metric_max(m, "read_batch_depth")
        if depth is not None and batched:
            lv.server_read_batch_depth_max = max(lv.server_read_batch_depth_max or 0, round(depth))
    paired = metric_mean(m, "writes_paired")
    if paired is not None:
        lv.server_paired_samples.append(
            (round(t, 3), paired, metric_mean(m, "event_loop_utilisation"))
        )
    # The worst tick since the last scrape, where the server says (a latest-tick gauge
    # alone misses every stall that a later tick overwrote before the scrape).
    lag = metric_max(m, "event_loop_lag_recent_max_seconds")
    if lag is None:
        lag = metric_sum(m, "event_loop_lag_seconds")
    else:
        lv.server_lag_recent = True
    return (t, lag * 1000.0, metric_sum(m, "streams_active"))


def steady_window(lv: LevelResult) -> tuple[float, float]:
    """While every stream ran: from all open (+0.5 s) to the first stream's end."""
    lo = (lv.t_all_open or 0.0) + 0.5
    hi = lv.t_first_done if lv.t_first_done is not None else float("inf")
    return lo, hi


def steady_mean(samples: list[ProcSample], lv: LevelResult) -> float:
    """Mean CPU while every stream ran; all samples if that window is empty."""
    lo, hi = steady_window(lv)
    steady = [s.cpu_pct for s in samples if lo <= s.t <= hi]
    if not steady:
        steady = [s.cpu_pct for s in samples]
    return float(np.mean(steady))


def fill_tail(lv: LevelResult, late_ms: float | None = None) -> None:
    """Tail stability: the worst 1 s window's echo round-trip p99 while every stream ran
    (a periodic stall shows as one window far above the run's p99). With ``late_ms``, a
    window in which the generator's own send lateness p99 was above it is left out (and
    counted): the generator's stall also delayed reading the echoes, so that window
    measures the generator, not the server."""
    lo, hi = steady_window(lv)
    windows = []
    lv.rtt_windows_generator_late = 0
    for w in lv.timeline:
        if not (lo <= w["t"] - 1.0 and w["t"] <= hi and w.get("rtt_p99") is not None):
            continue
        late = w.get("lateness_p99")
        if late_ms is not None and late is not None and late > late_ms:
            lv.rtt_windows_generator_late += 1
            continue
        windows.append((w["rtt_p99"], w["t"]))
    if windows:
        lv.rtt_worst_window_p99_ms, lv.rtt_worst_window_t = max(windows)


def fill_heard(lv: LevelResult, results: list[EngineResult], col: WindowCollector) -> None:
    """What the callers heard: first audio, barge-in, the simulated playout buffer."""
    for r in results:
        lv.underruns += r.underruns
        lv.clears += r.clears
        lv.checkpoints_answered += r.checkpoints
        lv.dtmf_sent += r.dtmf_sent
        lv.barge_in_missed += r.barge_in_missed
        lv.unexpected_clears += r.unexpected_clears
    lv.first_audio_ms = col.first_audio.summary()
    lv.barge_in_ms = col.barge_in.summary()
    calls = [s for r in results for s in r.streams if s.connected]
    lv.first_audio_missing = sum(1 for s in calls if s.first_audio_ms is None)
    heard = [s for s in calls if s.playout_s > 0]
    lv.playout_minutes = sum(s.playout_s for s in heard) / 60.0
    lv.streams_with_underruns = sum(1 for s in heard if s.underruns)
    if heard:
        lv.underruns_per_min = lv.underruns / lv.playout_minutes
        longest = np.array([s.longest_silence_ms for s in heard])
        lv.longest_silence_ms = float(longest.max())
        lv.longest_silence_p99_ms = float(np.percentile(longest, 99, method="higher"))


def fill_level(
    lv: LevelResult,
    results: list[EngineResult],
    col: WindowCollector,
    gen_samples: list[ProcSample],
    server_samples: list[ProcSample],
    before: dict[str, float] | None,
    after: dict[str, float] | None,
    lag_series: list[tuple[float, float, float]],
    *,
    late_ms: float | None = None,
) -> None:
    """Fill ``lv`` from the generators' ``results`` and windows, the generator's and the
    server's CPU/RSS samples, the server's /metrics ``before`` and ``after`` the level and
    its event-loop lag series (``late_ms``: see :func:`fill_tail`)."""
    errors: dict[str, int] = {}
    for r in results:
        lv.connected += r.connected
        lv.failed += r.failed
        lv.abnormal += r.abnormal
        lv.frames_sent += r.frames_sent
        lv.bytes_sent += r.bytes_sent
        lv.play_received += r.play_received
        lv.other_received += r.other_received
        lv.echo_matched += r.echo_matched
        lv.echo_unmatched += r.echo_unmatched
        lv.write_paused += r.write_paused
        for msg, count in r.errors.items():
            errors[msg] = errors.get(msg, 0) + count
    lv.errors = dict(sorted(errors.items(), key=lambda kv: -kv[1]))
    lv.lateness_ms = col.lateness.summary()
    lv.rtt_ms = col.rtt.summary()
    lv.return_gap_ms = col.gap.summary()
    opens = [r.t_all_open for r in results]
    lv.t_all_open = None if None in opens else max(o for o in opens if o is not None)
    firsts = [r.t_first_done for r in results if r.t_first_done is not None]
    lv.t_first_done = min(firsts) if firsts else None
    lv.t_end = max((r.t_end for r in results), default=0.0)
    lv.timeline = col.timeline()
    fill_tail(lv, late_ms)
    fill_heard(lv, results, col)
    if gen_samples:
        lv.generator_cpu_pct = steady_mean(gen_samples, lv)
    if server_samples:
        lv.cpu_samples = [(s.t, s.cpu_pct, s.rss_bytes / 2**20) for s in server_samples]
        lv.cpu_mean_pct = steady_mean(server_samples, lv)
        lv.cpu_max_pct = max(s.cpu_pct for s in server_samples)
        peak = max(s.rss_bytes for s in server_samples) / 2**20
        lv.rss_peak_mib = peak
        if lv.rss_base_mib is not None and lv.streams:
            lv.rss_per_stream_kib = (peak - lv.rss_base_mib) * 1024 / lv.streams
    if before is not None and after is not None:
        lv.server_metrics = True

        def delta(name: str) -> int:
            return round(metric_sum(after, name) - metric_sum(before, name))

        lv.server_frames_received = delta("media_frames_total")
        lv.server_frames_lost = lv.frames_sent - lv.server_frames_received
        lv.server_gaps = delta("gaps_total")
        lv.server_handler_dropped_samples = delta("handler_dropped_samples_total")
        lv.server_frames_invalid = delta("frames_invalid_total")
        lv.server_frames_sent = delta("frames_sent_total")
        if _values(after, "event_loop_stalls_total"):
            lv.server_stalls = {
                kind: round(_labelled_sum(after, "event_loop_stalls_total", "kind", kind))
                - round(_labelled_sum(before, "event_loop_stalls_total", "kind", kind))
                for kind in ("blocked", "busy")
            }
        if _values(after, "read_batch_stalls_total"):
            lv.server_read_batch_stalls = delta("read_batch_stalls_total")
        lv.server_lag_samples = [(round(t, 3), lag, n) for t, lag, n in lag_series]
        lags = [lag for _, lag, _ in lag_series]
        lv.server_loop_lag_max_all_ms = max(lags) if lags else None
        lo, hi = steady_window(lv)
        if lv.server_lag_recent:
            lo += RECENT_LAG_S  # a scrape then still shows the opening's last stall
        steady = [lag for t, lag, _ in lag_series if lo <= t <= hi]
        lv.server_loop_lag_max_ms = max(steady) if steady else lv.server_loop_lag_max_all_ms
    fill_pairing(lv)


def fill_pairing(lv: LevelResult) -> None:
    """Seconds the server paired its outgoing frames (it traded 20 ms of latency for
    CPU), over the level and while every stream ran, from the per-second samples."""
    samples = lv.server_paired_samples
    if not samples:
        return
    lo, hi = steady_window(lv)
    # Each sample stands for the second before it (the scrape interval).
    lv.server_paired_s = sum(share for _, share, _ in samples)
    lv.server_paired_steady_s = sum(share for t, share, _ in samples if lo <= t <= hi)
    utils = [u for _, _, u in samples if u is not None]
    lv.server_loop_utilisation_max = max(utils) if utils else None
