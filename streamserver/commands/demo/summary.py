"""What the demo shows: a live progress line while the calls run, a summary at the end."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TextIO

from .results import CallResult, DemoResult

__all__ = ["LEGEND", "Progress", "format_summary"]


class Progress:
    """One live status line on ``stream`` (rewritten in place on a terminal, else a line
    every second or so)."""

    def __init__(self, stream: TextIO, *, expected_frames: int) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.expected = max(1, expected_frames)
        self.t0 = time.monotonic()
        self._last_line = 0.0
        self._shown = False

    def update(self, *, answered: int, ended: int, calls: int, live: int, rx: int, tx: int) -> None:
        elapsed = time.monotonic() - self.t0
        frac = min(1.0, rx / self.expected)
        bar = "#" * round(frac * 20)
        line = (
            f"[demo] {elapsed:5.1f}s  calls {answered}/{calls} answered, {ended} ended  "
            f"streams live {live}  audio in {rx / 50:5.1f}s  echoed {tx / 50:5.1f}s  "
            f"[{bar:<20}]"
        )
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
            self._shown = True
        elif elapsed - self._last_line >= 1.0 or not self._last_line:
            self._last_line = max(elapsed, 1e-9)
            self.stream.write(line + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()


def _rel(path: str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd()))
    return path


#: The words of the summary, explained once at its end.
LEGEND = """\
what the numbers mean:
  frames     the call audio travels in 20 ms pieces: "sent" by the (emulated) phone
             network, "received" by the server; the two should match
  gaps       frames that never arrived (the recorder fills each with 20 ms of silence)
  dropped    audio a handler was too slow to take and lost (should be 0)
  echo       the echo handler plays the audio straight back; round trip is how long a
             frame took to come back to the caller
  callbacks  Plivo's webhooks (stream started/stopped, hangup); "delivered during the
             stream" means the server passed it to the call's handlers while it was live
  word error rate  the share of the script's words the transcript got wrong (0 % is
             perfect; the small offline recogniser mishears some words of these
             synthetic 8 kHz voices, so a few errors are expected)
  event loop delay  the longest the server was late to react to anything; below ~20 ms
             no audio waits; one spike (loading the transcriber model, say) loses nothing"""


def _transcript_lines(c: CallResult, transcriber: str) -> list[str]:
    lines = []
    if c.script:
        lines.append(f'  script    "{c.script}"')
    if c.transcripts:
        said = " ".join(c.transcripts)
        score = ""
        if c.word_error_rate is not None:
            score = (
                f"  (word error rate {c.word_error_rate:.0%}: "
                f"{c.word_errors} of {c.script_words} words wrong)"
            )
        lines.append(f'  heard as  "{said}"{score}')
    elif transcriber == "on":
        lines.append("  heard as  (no transcript)")
    return lines


def format_summary(result: DemoResult) -> str:
    """The human-readable summary printed at the end."""
    lines = [
        f"streamserver demo: {len(result.calls)} call(s) through the local Plivo emulator "
        f"in {result.elapsed_s:.1f} s",
        "",
    ]
    for i, c in enumerate(result.calls, 1):
        lines.append(
            f"call {i}  to {c.number}  says {c.sample}  {c.status or '?'}"
            f"{'  ' + c.hangup if c.hangup else ''}  ({c.call_uuid})"
        )
        if not c.stream_id:
            lines.append("  no stream was started")
            continue
        lines.append(
            f"  stream    {c.stream_id}: {c.stream_duration_s:.1f} s; "
            f"{c.frames_sent} frames sent, {c.server_frames} received, "
            f"{c.gaps} gaps, {c.handler_drops} samples dropped"
            + ("" if c.stream_ok else f"  PROBLEM: {'; '.join(c.stream_errors) or 'not ok'}")
        )
        for path in c.recordings:
            lines.append(f"  recorded  {_rel(path)} ({c.recorded_s:.2f} s)")
        if not c.recordings:
            lines.append("  recorded  nothing (PROBLEM)")
        if c.heard_path:
            rms = "silence" if c.heard_rms_dbfs is None else f"loudness {c.heard_rms_dbfs} dBFS"
            echo = (
                f"echo of {c.echo_frames}/{c.frames_sent} frames, round trip "
                f"median {c.echo_rtt_p50_ms} ms, longest {c.echo_rtt_max_ms} ms"
                if c.echo_frames
                else "no echo heard (PROBLEM)"
            )
            lines.append(
                f"  caller    heard {_rel(c.heard_path)}: {c.heard_s:.2f} s, {rms}; {echo}"
            )
        lines += _transcript_lines(c, result.transcriber)
        if c.callbacks:
            live = f" ({', '.join(c.callbacks_live)} delivered during the stream)"
            lines.append(f"  callbacks {', '.join(c.callbacks)}{live if c.callbacks_live else ''}")
    lines.append("")
    cb = result.callbacks
    lines.append(
        f"signatures: {result.signatures_ok} stream upgrade(s) and "
        f"{sum(v for k, v in cb.items() if k != 'rejected')} webhook(s) verified "
        f"({', '.join(f'{k} {v}' for k, v in sorted(cb.items()) if k != 'rejected')}); "
        f"{result.signatures_rejected} rejected"
    )
    lines.append(f"transcriber: {result.transcriber}")
    lines.append(f"server event loop: longest delay {result.loop_lag_max_ms:.1f} ms")
    lines.append(
        f"output: {_rel(result.out)}/ (summary.json, recordings/, heard/; replaced on every run)"
    )
    lines += ["", LEGEND]
    if result.error:
        lines.append(f"PROBLEM: {result.error}")
    elif not result.ok:
        lines.append("PROBLEM: some calls did not stream, record and echo as expected")
    return "\n".join(lines)
