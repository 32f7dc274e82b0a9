"""The load test's outputs: ``result.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .results import LevelResult, RunResult
from .stats import LatencySummary

__all__ = [
    "markdown",
    "one_line",
    "read_batching_note",
    "to_json",
    "write_outputs",
    "write_pairing_note",
]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(result: RunResult) -> str:
    """``result.json``: the whole result and its exit code."""
    doc = asdict(result)
    doc["exit_code"] = result.exit_code
    return json.dumps(doc, indent=2, default=_json_default) + "\n"


def write_outputs(result: RunResult, out_dir: Path, *, plots: bool = True) -> list[Path]:
    """Write result.json, report.md and (with matplotlib installed) the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    images: list[Path] = []
    if plots:
        try:
            from .plots import write_plots
        except ImportError:  # matplotlib is the optional "plots" extra
            pass
        else:
            images = write_plots(result, out_dir)
    p = out_dir / "result.json"
    p.write_text(to_json(result), encoding="utf-8")
    written.append(p)
    p = out_dir / "report.md"
    p.write_text(markdown(result, images=[i.relative_to(out_dir) for i in images]), "utf-8")
    written.append(p)
    return written + images


def one_line(lv: LevelResult) -> str:
    """A level's verdict and headline numbers, for the progress output."""
    verdict = "HELD" if lv.held else ("INVALID" if not lv.valid else "FAILED")
    parts = [f"   {verdict}: {lv.connected}/{lv.streams} connected"]
    if lv.lateness_ms is not None:
        parts.append(f"late p99 {lv.lateness_ms.p99:.1f} ms")
    if lv.rtt_ms is not None:
        parts.append(f"rtt p50/p99 {lv.rtt_ms.p50:.1f}/{lv.rtt_ms.p99:.1f} ms")
    if lv.cpu_mean_pct is not None:
        parts.append(f"server cpu {lv.cpu_mean_pct:.0f}%")
    if lv.rss_per_stream_kib is not None:
        parts.append(f"{lv.rss_per_stream_kib:.0f} KiB/stream")
    if lv.server_frames_lost is not None:
        parts.append(f"lost {lv.server_frames_lost}")
    if lv.recordings is not None:
        parts.append(f"recordings {lv.recordings.exact}/{lv.recordings.checked} exact")
    line = ", ".join(parts)
    if lv.qoe:
        line += f"\n   what the callers heard: {lv.qoe}"
    if lv.failures:
        line += "\n   " + "\n   ".join(lv.failures)
    return line


def _ms(s: LatencySummary | None, attr: str) -> str:
    return "-" if s is None else f"{getattr(s, attr):.1f}"


def _opt(v: float | int | None, fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _verdict(lv: LevelResult) -> str:
    if lv.held:
        return "held"
    return "INVALID" if not lv.valid else "failed"


def _levels_table(levels: list[LevelResult]) -> list[str]:
    head = (
        "| streams | verdict | connected | frames sent | server rx | lost | gaps | dropped "
        "| late p50/p99/max ms | rtt p50/p90/p99/max ms | return gap p90/p99 ms "
        "| server CPU % mean/max | RSS MiB base/peak | KiB/stream | loop lag ms steady/all "
        "| recordings exact | gen CPU % |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for lv in levels:
        rec = "-"
        if lv.recordings is not None:
            rec = f"{lv.recordings.exact}/{lv.recordings.checked}"
        lat, rtt, gap = lv.lateness_ms, lv.rtt_ms, lv.return_gap_ms
        out.append(
            "| "
            + " | ".join(
                [
                    str(lv.streams),
                    _verdict(lv),
                    f"{lv.connected}/{lv.streams}",
                    f"{lv.frames_sent:,}",
                    _opt(lv.server_frames_received, "{:,}"),
                    _opt(lv.server_frames_lost),
                    _opt(lv.server_gaps),
                    _opt(lv.server_handler_dropped_samples),
                    f"{_ms(lat, 'p50')} / {_ms(lat, 'p99')} / {_ms(lat, 'max')}",
                    f"{_ms(rtt, 'p50')} / {_ms(rtt, 'p90')} / {_ms(rtt, 'p99')} / "
                    f"{_ms(rtt, 'max')}",
                    f"{_ms(gap, 'p90')} / {_ms(gap, 'p99')}",
                    f"{_opt(lv.cpu_mean_pct)} / {_opt(lv.cpu_max_pct)}",
                    f"{_opt(lv.rss_base_mib)} / {_opt(lv.rss_peak_mib)}",
                    _opt(lv.rss_per_stream_kib, "{:.1f}"),
                    f"{_opt(lv.server_loop_lag_max_ms)} / {_opt(lv.server_loop_lag_max_all_ms)}",
                    rec,
                    _opt(lv.generator_cpu_pct),
                ]
            )
            + " |"
        )
    return out


def _worst_window(lv: LevelResult) -> str:
    """Tail stability: the worst steady 1 s window's echo p99, at its time."""
    if lv.rtt_worst_window_p99_ms is None or lv.rtt_worst_window_t is None:
        return "-"
    text = f"{lv.rtt_worst_window_p99_ms:.0f} (at {lv.rtt_worst_window_t:.0f} s)"
    if lv.rtt_windows_generator_late:
        text += f"; {lv.rtt_windows_generator_late} s with the generator late left out"
    return text


def _heard_table(levels: list[LevelResult]) -> list[str]:
    """What the callers heard, per level, next to the server's CPU and the pass/fail."""
    head = (
        "| streams | service levels | what the callers heard | first audio p50/p99 ms "
        "| barge-in p50/p99 ms | barge-ins missed | underruns/min | calls with underruns "
        "| longest silence p99/max ms | worst 1 s echo p99 ms | server CPU % |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for lv in levels:
        fa, bi = lv.first_audio_ms, lv.barge_in_ms
        turns = (bi.count if bi is not None else 0) + lv.barge_in_missed
        heard = lv.connected - lv.first_audio_missing
        out.append(
            "| "
            + " | ".join(
                [
                    str(lv.streams),
                    _verdict(lv),
                    lv.qoe or "-",
                    f"{_ms(fa, 'p50')} / {_ms(fa, 'p99')}",
                    f"{_ms(bi, 'p50')} / {_ms(bi, 'p99')}",
                    f"{lv.barge_in_missed}/{turns}" if turns else "-",
                    _opt(lv.underruns_per_min, "{:.1f}"),
                    f"{lv.streams_with_underruns}/{heard}" if heard else "-",
                    f"{_opt(lv.longest_silence_p99_ms)} / {_opt(lv.longest_silence_ms)}",
                    _worst_window(lv),
                    _opt(lv.cpu_mean_pct),
                ]
            )
            + " |"
        )
    return out


def markdown(result: RunResult, images: list[Path] | None = None) -> str:
    """The human-readable report."""
    s = result.settings
    if s["ramp_s"] is not None:
        ramp = f"ramp {s['ramp_s']:g} s"
    else:
        ramp = f"ramp {s['ramp_rate']:g} new streams/s"
    lines = [
        "# Load test report",
        "",
        f"- started: {result.started_at}",
        f"- command: `{result.command_line}`",
        f"- machine: {result.machine.get('cpu') or '?'}, {result.machine.get('cores')} cores, "
        f"Python {result.machine.get('python')}; load average at start "
        f"{result.machine.get('loadavg_at_start')}",
        f"- profile: {_profile(s)}",
        f"- load: {s.get('dialect', 'plivo')} streams, {s['content_type']}, tracks {s['tracks']}, "
        f"{'echo round trip measured' if s['echo'] else 'no echo'}, "
        f"{s['duration_s']:g} s of audio per stream, {ramp}, "
        f"{'all streams on one beat (burst)' if s['burst'] else 'random phases'}, "
        f"{s['processes']} generator process(es)",
        f"- pinning: server CPUs {s['server_cpus'] or 'any'}, "
        f"generator CPUs {s['generator_cpus'] or 'any'}"
        + (" (real-time priority)" if s.get("generator_rt") else ""),
        f"- service levels: generator lateness p99 <= "
        f"{s['thresholds']['max_lateness_p99_ms']:g} ms (else INVALID), echo p99 <= "
        f"{s['thresholds']['max_rtt_p99_ms']:g} ms, server CPU <= "
        f"{s['thresholds']['max_cpu_pct']:g}%, zero frames lost/gaps/drops, every stream "
        "connected and closed normally"
        + (", every recording sample-exact" if s["verify_recordings"] else ""),
    ]
    if result.interrupted:
        lines.append("- **interrupted** (Ctrl-C): the last level is partial")
    lines.append("")
    if len(result.subjects) > 1:
        lines += ["## Side by side", "", "| server | last level that held | stopped by |"]
        lines.append("|---|---|---|")
        for sub in result.subjects:
            lines.append(f"| {sub.name} | {_opt(sub.held_max)} | {sub.stopped_by or '-'} |")
        lines.append("")
    for sub in result.subjects:
        lines.append(f"## {sub.name}")
        lines.append("")
        started = next((lv.server_cmd for lv in sub.levels if lv.server_cmd), None)
        if started:
            lines.append(f"server command (first level): `{started}`")
        elif sub.cmd:
            lines.append(f"server command: `{sub.cmd}`")
        elif sub.url:
            lines.append(f"server: {sub.url}")
        lines.append("")
        held = "none" if sub.held_max is None else f"{sub.held_max} streams"
        lines.append(
            f"**Last level that held: {held}.**"
            + (f" Stopped by: {sub.stopped_by}." if sub.stopped_by else "")
        )
        lines.append("")
        lines += _levels_table(sub.levels)
        lines.append("")
        lines += ["What the callers heard:", "", *_heard_table(sub.levels), ""]
        batching = [lv for lv in sub.levels if lv.server_read_batched_max is not None]
        if batching:
            lines.append(read_batching_note(batching))
            lines.append("")
        stalled = [lv for lv in sub.levels if lv.server_stalls and any(lv.server_stalls.values())]
        if stalled:
            lines.append(stalls_note(stalled))
            lines.append("")
        pairing = [lv for lv in sub.levels if lv.server_paired_s is not None]
        if pairing:
            lines.append(write_pairing_note(pairing))
            lines.append("")
        for lv in sub.levels:
            if lv.failures or lv.errors or (lv.recordings and lv.recordings.problems):
                lines.append(f"{lv.streams} streams:")
                lines += [f"- {f}" for f in lv.failures]
                lines += [f"- error x{n}: {m}" for m, n in list(lv.errors.items())[:10]]
                if lv.recordings is not None:
                    lines += [f"- recording: {p}" for p in lv.recordings.problems]
                lines.append("")
    if images:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.as_posix()})" for p in images]
        lines.append("")
    lines += [
        "Columns: *late* is the generator's own send lateness against the absolute 20 ms "
        "schedule; *rtt* is the echo round trip of each frame (sent -> its playAudio back); "
        "*return gap* is the inter-arrival time of returned frames minus 20 ms; *server rx*, "
        "*lost*, *gaps*, *dropped* (handler samples) come from the server's /metrics; CPU "
        "is % of one core while all streams ran; KiB/stream is (peak RSS - RSS before the "
        "first connection) / streams; loop lag is the largest the server reported while every "
        "stream ran (steady) and over the whole level (all, including the opening and "
        "closing of every stream).",
        "",
        "What the callers heard: *first audio* is the time from sending `start` to the "
        "first audio frame back; *barge-in* (bot profile) from sending the first frame of "
        "the caller's speech to receiving the server's clear, per turn, and a turn is "
        "*missed* when the caller spoke over the bot and no clear came; *underruns* are "
        "20 ms ticks with an empty buffer in a simulated 60 ms jitter buffer fed by the "
        "arrival times of the server's audio, per minute of the bot's speech; *longest "
        "silence* is the longest run of them inside the bot's speech (p99 over the calls, "
        "and the worst call). The verdict grades each against `qoe_limits` (result.json) "
        "and names what made a level degraded or bad.",
        "",
    ]
    return "\n".join(lines)


def _profile(s: dict[str, Any]) -> str:
    if s.get("profile") != "bot":
        return "echo (every call streams the audio file; the server's audio back is measured)"
    b = s["bot"]
    return (
        f"bot (turns of {b['turn_s']:g} s: the bot plays a {b['prompt_s']:g} s prompt, on "
        f"start and on DTMF {b['digit']}; the caller speaks {b['speech_at_s']:g} s into "
        f"each turn for {b['speech_s']:g} s and the bot must stop)"
    )


def stalls_note(levels: list[LevelResult]) -> str:
    """streamserver's stall watchdog in plain words: a *blocked* loop is a handler (or
    other code) holding it, and the server log names the place."""
    parts = []
    for lv in levels:
        st = lv.server_stalls or {}
        blocked, busy = st.get("blocked", 0), st.get("busy", 0)
        what = []
        if blocked:
            log = f" (the server log names the code: {lv.server_log})" if lv.server_log else ""
            what.append(f"{blocked} blocked by one call{log}")
        if busy:
            what.append(f"{busy} busy (more work than the core does)")
        parts.append(f"at {lv.streams} streams " + " and ".join(what))
    return (
        "Event-loop stalls: the server's loop was late by its `[server] stall_warn_s` "
        "(0.25 s by default); " + "; ".join(parts) + "."
    )


def write_pairing_note(levels: list[LevelResult]) -> str:
    """streamserver's write pairing in plain words (``[session] send_batch_busy``): the one
    setting that trades latency for CPU, so a report says when it happened."""
    parts = []
    for lv in levels:
        total = lv.server_paired_s or 0.0
        steady = lv.server_paired_steady_s or 0.0
        busiest = lv.server_loop_utilisation_max
        loop = f"; its loop used at most {busiest:.0%} of a core" if busiest is not None else ""
        if total < 0.5:
            parts.append(f"at {lv.streams} streams it never did{loop}")
        else:
            parts.append(
                f"at {lv.streams} streams it did for {total:.0f} s "
                f"({steady:.0f} s of them while every stream ran){loop}"
            )
    return (
        "Write pairing: when its core is short (the loop thread busy 95 % of the time for "
        "1 s), streamserver sends two outgoing frames per write instead of one, which "
        "saves CPU and delays every other frame by up to 20 ms "
        "(`[session] send_batch_busy`); " + "; ".join(parts) + "."
    )


def read_batching_note(levels: list[LevelResult]) -> str:
    """streamserver's read batching in plain words (``[session] read_batch_frames``)."""
    parts = []
    for lv in levels:
        most = lv.server_read_batched_max or 0
        paused = lv.server_read_batch_stalls or 0
        if most == 0:
            parts.append(
                f"at {lv.streams} streams it was not used (the server was not busy enough)"
            )
        else:
            depth = lv.server_read_batch_depth_max or 2
            deeper = f" ({depth} frames per wake-up while the core was short)" if depth > 2 else ""
            parts.append(
                f"at {lv.streams} streams up to {most} streams at a time were read that "
                f"way{deeper}, and {paused} time{'s' if paused != 1 else ''} a stream that "
                "paused went back to being read frame by frame (a pause in the audio, or a "
                "stream's last message, `stop`, waiting below the mark)"
            )
    return (
        "Read batching: when busy, streamserver reads a listen-only stream two frames per "
        "wake-up instead of one, to save CPU (`[session] read_batch_frames`); "
        + "; ".join(parts)
        + "."
    )
