"""How a level sounded to its callers: one line, ``good``, ``degraded`` or ``bad``, and why.

The service levels (:mod:`.judge`) say whether the server did its job (every frame in,
every echo back, CPU below the limit); this says what the callers heard while it did:
how long they waited for the bot's first words, how fast it stopped when they spoke, and
whether its speech played without gaps through a 60 ms jitter buffer. Each measure is
graded against its pair in :class:`~.config.QoeLimits`; the level gets the worst grade,
with the measures that earned it as the reason.
"""

from __future__ import annotations

from .config import QoeLimits
from .results import LevelResult

__all__ = ["GRADES", "grade", "qoe_verdict"]

#: From best to worst; ``n/a``: nothing to judge (no audio came back), ``invalid``: the
#: load generator lagged, so nothing it measured counts.
GRADES = ("good", "degraded", "bad")


def grade(value: float, limits: tuple[float, float]) -> str:
    """``good`` up to ``limits[0]``, ``degraded`` up to ``limits[1]``, else ``bad``."""
    if value <= limits[0]:
        return "good"
    return "degraded" if value <= limits[1] else "bad"


def qoe_verdict(lv: LevelResult, limits: QoeLimits, *, profile: str) -> tuple[str, str]:
    """(grade, one line) for ``lv``; also stored in ``lv.qoe_grade`` and ``lv.qoe``."""
    result = _verdict(lv, limits, profile)
    lv.qoe_grade, lv.qoe = result
    return result


def _verdict(lv: LevelResult, limits: QoeLimits, profile: str) -> tuple[str, str]:
    if not lv.valid:
        return "invalid", "invalid: the load generator lagged, nothing it heard counts"
    if not lv.connected:
        return "n/a", "n/a: no call connected"
    if lv.first_audio_ms is None:
        if profile == "bot":
            return "bad", "bad: the bot never spoke (no audio came back on any call)"
        return "n/a", "n/a: no audio came back (use --profile bot, or an echoing server)"
    found: list[tuple[str, str]] = []  # (grade, the measure as text, with its limit if past)

    def rate(value: float, pair: tuple[float, float], text: str, unit: str) -> None:
        g = grade(value, pair)
        limit = pair[0] if g == "degraded" else pair[1]
        found.append((g, text if g == "good" else f"{text} > {limit:g}{unit}"))

    if lv.first_audio_missing:
        found.append(
            ("bad", f"{lv.first_audio_missing} of {lv.connected} calls never heard the server")
        )
    fa = lv.first_audio_ms
    rate(fa.p99, limits.first_audio_p99_ms, f"first audio p99 {fa.p99:.0f} ms", " ms")
    if profile == "bot":
        bi = lv.barge_in_ms
        turns = (bi.count if bi is not None else 0) + lv.barge_in_missed
        if not turns:
            found.append(("bad", "no barge-in measured (the bot never stopped for the caller)"))
        else:
            if bi is not None:
                rate(bi.p99, limits.barge_in_p99_ms, f"barge-in p99 {bi.p99:.0f} ms", " ms")
            pct = 100.0 * lv.barge_in_missed / turns
            missed = f"{lv.barge_in_missed} of {turns} barge-ins missed ({pct:.1f} %)"
            rate(pct, limits.barge_in_missed_pct, missed, " %")
    elif lv.rtt_ms is not None:
        rtt = lv.rtt_ms.p99
        rate(rtt, limits.echo_rtt_p99_ms, f"echo round trip p99 {rtt:.0f} ms", " ms")
        worst = lv.rtt_worst_window_p99_ms
        if worst is not None and rtt > 0:
            ratio = worst / rtt
            text = f"worst 1 s window p99 {worst:.0f} ms = {ratio:.1f}x the run's"
            rate(ratio, limits.tail_ratio, text, "x")
    if lv.underruns_per_min is not None:
        rate(
            lv.underruns_per_min,
            limits.underruns_per_min,
            f"{lv.underruns_per_min:.1f} underruns/min",
            "/min",
        )
    if lv.longest_silence_p99_ms is not None:
        rate(
            lv.longest_silence_p99_ms,
            limits.longest_silence_ms,
            f"longest silence p99 {lv.longest_silence_p99_ms:.0f} ms",
            " ms",
        )
    worst = max((GRADES.index(g) for g, _ in found), default=0)
    word = GRADES[worst]
    if worst == 0:
        return word, f"{word}: " + ", ".join(text for _, text in found)
    return word, f"{word}: " + "; ".join(text for g, text in found if g != "good")
