"""What ``streamserver replay`` prints when a stream ends: :func:`summary` of its report."""

from __future__ import annotations

from .streamclient import StreamReport

__all__ = ["summary"]


def summary(report: StreamReport, prog: str) -> str:
    """The lines ``replay`` prints at the end: what was sent, heard, done to it."""
    lines = [f"{prog}: {report.url}"]
    mode = "bidirectional" if report.bidirectional else "one-way"
    lines.append(
        f"  stream     {report.dialect} {report.stream_id} (call {report.call_id}), "
        f"{report.content_type}, "
        f"tracks {'+'.join(report.tracks)}, {mode}"
    )
    if not report.connected:
        lines.append("  connected  no")
    else:
        lines.append(
            f"  frames     {report.frames_sent}/{report.frames_total} sent, "
            f"{report.audio_s:.2f} s of audio in {report.duration_s:.2f} s, "
            f"{report.bytes_sent / 1024:.1f} KiB in {report.messages_sent} messages"
        )
        lateness = report.lateness
        if lateness is not None:
            lines.append(
                f"  lateness   p50 {lateness.p50:.1f} ms  p99 {lateness.p99:.1f} ms  "
                f"max {lateness.max:.1f} ms"
            )
        stop = "sent" if report.stop_sent else "not sent"
        lines.append(f"  dtmf       {report.dtmf_sent} sent, stop {stop}")
        if report.faults:
            did = ", ".join(f"{n} {k}" for k, n in report.fault_counts.items() if n)
            lines.append(f"  faults     {report.faults} ({did or 'nothing happened'})")
        if len(report.links) > 1 or any(link.vanished for link in report.links):
            for link in report.links:
                how = (
                    f"vanished ({link.vanished})"
                    if link.vanished
                    else f"closed {link.close_code} by the "
                    f"{'server' if link.closed_by_server else 'client'}"
                    + (f" ({link.close_reason})" if link.close_reason else "")
                )
                lines.append(
                    f"  socket {link.index}   {link.opened_at:.2f}-{link.ended_at:.2f} s, {how}"
                )
        if report.bidirectional:
            played = sum(end - start for start, end in report.played_segments)
            lines.append(
                f"  playback   {played:.2f} s played, {len(report.checkpoints)} checkpoints "
                f"answered, {len(report.cleared)} clears, "
                f"{len(report.received_events)} server messages"
            )
            for name, at in report.checkpoints[:10]:
                lines.append(f"    checkpoint {name!r} played at {at:.3f} s")
            if report.marks_after_clear:
                lines.append(f"    {len(report.marks_after_clear)} marks echoed after a clear")
            if len(report.checkpoints) > 10:
                lines.append(f"    ... and {len(report.checkpoints) - 10} more")
            rtt = report.echo_rtt
            if rtt is not None:
                lines.append(
                    f"  echo rtt   p50 {rtt.p50:.1f} ms  p90 {rtt.p90:.1f} ms  "
                    f"p99 {rtt.p99:.1f} ms  ({rtt.count} echoed frames)"
                )
    if report.close_code is not None:
        who = "server" if report.closed_by_server else "client"
        reason = f" {report.close_reason!r}" if report.close_reason else ""
        lines.append(f"  closed     {report.close_code}{reason} by the {who}")
    elif report.http_status is not None:
        lines.append(f"  refused    {report.close_reason}")
    for message in report.errors[:10]:
        lines.append(f"  error      {message}")
    if len(report.errors) > 10:
        lines.append(f"  error      ... and {len(report.errors) - 10} more")
    lines.append(f"  result     {'ok' if report.ok else 'FAILED'}")
    return "\n".join(lines)
