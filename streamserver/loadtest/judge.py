"""Judging a level against the service levels: did it hold?"""

from __future__ import annotations

from .config import Thresholds
from .results import LevelResult

__all__ = ["judge"]


def judge(
    lv: LevelResult, th: Thresholds, *, echo: bool, bot: bool = False, faults: bool = False
) -> None:
    """Record in ``lv.failures`` every service level the level missed; set ``lv.held``
    (and ``lv.valid``: False when the generator itself lagged, which voids the level).
    With ``bot`` (the bot profile) every call must hear the bot.

    Under frame faults (``faults``) gaps and frames that never come back are what the run
    asked for, not failures; the recordings (``--verify-recordings``) say whether the
    server answered them right."""
    f = lv.failures
    if lv.lateness_ms is not None and lv.lateness_ms.p99 > th.max_lateness_p99_ms:
        lv.valid = False
        f.append(
            f"INVALID: generator send lateness p99 {lv.lateness_ms.p99:.1f} ms > "
            f"{th.max_lateness_p99_ms:g} ms (the load generator lagged)"
        )
    if lv.failed:
        f.append(f"{lv.failed} of {lv.streams} streams failed to connect")
    if lv.abnormal:
        f.append(f"{lv.abnormal} streams ended abnormally")
    if lv.connected and lv.frames_sent == 0:
        f.append("no frames were sent")
    if lv.server_metrics:
        if lv.server_frames_lost:
            f.append(f"server received {lv.server_frames_lost:+d} frames fewer than sent")
        if lv.server_gaps and not faults:
            f.append(f"server saw {lv.server_gaps} gaps")
        if lv.server_handler_dropped_samples:
            f.append(f"handlers dropped {lv.server_handler_dropped_samples} samples")
        if lv.server_frames_invalid:
            f.append(f"server rejected {lv.server_frames_invalid} frames as invalid")
        lag = lv.server_loop_lag_max_ms
        if lag is not None and lag > th.max_loop_lag_ms:
            f.append(f"server event-loop lag {lag:.0f} ms > {th.max_loop_lag_ms:g} ms")
    if echo:
        expected = lv.frames_sent
        if lv.echo_matched < expected and not faults:
            f.append(f"{expected - lv.echo_matched} of {expected} frames never echoed back")
        if lv.echo_unmatched and not faults:
            f.append(f"{lv.echo_unmatched} playAudio frames matched no sent frame")
        if lv.rtt_ms is not None and lv.rtt_ms.p99 > th.max_rtt_p99_ms:
            f.append(f"echo round trip p99 {lv.rtt_ms.p99:.1f} ms > {th.max_rtt_p99_ms:g} ms")
    if bot and lv.first_audio_missing:
        f.append(f"{lv.first_audio_missing} of {lv.connected} calls never heard the bot")
    if lv.cpu_mean_pct is not None and lv.cpu_mean_pct > th.max_cpu_pct:
        f.append(f"server CPU {lv.cpu_mean_pct:.0f}% > {th.max_cpu_pct:g}% (saturated)")
    if (
        th.max_rss_kib_per_stream is not None
        and lv.rss_per_stream_kib is not None
        and lv.rss_per_stream_kib > th.max_rss_kib_per_stream
    ):
        f.append(
            f"server memory {lv.rss_per_stream_kib:.0f} KiB/stream > "
            f"{th.max_rss_kib_per_stream:g} KiB"
        )
    if lv.recordings is not None and not lv.recordings.ok:
        r = lv.recordings
        f.append(
            f"recordings: {r.exact} of {r.checked} sample-exact "
            f"({r.missing} missing, {r.mismatched} different)"
        )
    lv.held = not f
