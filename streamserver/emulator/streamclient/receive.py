"""What the provider side does with the server's messages: :class:`Receiver` decodes each
one in the stream's dialect, records it, queues audio and checkpoints on the caller's
loudspeaker and answers clears, the way that provider does (:mod:`.wire`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from websockets.exceptions import ConnectionClosed

from ...audio import AudioFormat, Resampler
from ...protocol import (
    Checkpoint,
    ClearAudio,
    Command,
    PlayAudio,
    ProtocolError,
    SendDtmf,
    Unknown,
)
from .playback import EchoTracker
from .report import wire_record

if TYPE_CHECKING:
    from .client import PlivoStreamClient
    from .links import Link

__all__ = ["Receiver"]


class Receiver:
    """The server's messages on every socket of one stream (each link's receive loop
    calls :meth:`on_message`). Bad frames are recorded in the report, never raised."""

    def __init__(
        self, client: PlivoStreamClient, bidirectional: bool, echo: EchoTracker | None
    ) -> None:
        self._client = client
        self._bidirectional = bidirectional
        self._echo = echo
        self._resamplers: dict[int, Resampler] = {}

    async def on_message(self, message: str | bytes, now: float, link: Link) -> None:
        """One message from the server on ``link``, received at ``now``."""
        try:
            await self._handle(message, now, link)
        except ConnectionClosed:
            raise
        except Exception as exc:  # task boundary: one bad frame must not end the call
            self._client.report.add_error(f"failed to handle a server frame: {exc!r}")

    async def _handle(self, message: str | bytes, now: float, link: Link) -> None:
        client = self._client
        report, wire = client.report, client.wire
        provider = wire.name.capitalize()
        cmd: Command
        try:
            if isinstance(message, str):
                cmd = wire.decode(message)
            else:
                cmd = wire.decode_binary(message)
        except ProtocolError as exc:
            if exc.kind == "binary":
                report.add_error(
                    f"the server sent a binary frame ({len(message)} bytes); "
                    f"{provider} expects JSON text frames"
                )
            elif exc.kind == "json":
                report.add_error(f"the server sent {exc.reason}: {message[:80]!r}")
            else:
                report.add_error(f"the server sent a frame {provider} rejects: {exc.reason}")
            return
        report.received_events.append(wire_record(cmd))
        if isinstance(cmd, Unknown):
            return  # kept in received_events and otherwise ignored, as Plivo does
        if not self._bidirectional:
            event = report.received_events[-1]["event"]
            report.add_error(
                f"{event} on a stream that is not bidirectional; {provider} ignores it"
            )
            return
        playback = client.playback
        assert playback is not None
        if type(cmd) is PlayAudio:
            self._check_stream_id("playAudio", cmd.stream_id)
            self._play_audio(cmd, now)
            return
        match cmd:
            case Checkpoint(name=name, stream_id=sid):
                self._check_stream_id("checkpoint", sid)
                playback.enqueue_checkpoint(name, now, link.index)
            case ClearAudio(stream_id=sid):
                self._check_stream_id("clearAudio", sid)
                report.cleared.append(now - client.t0)
                # What was heard is decided now; the answers go once the media frames due
                # by now have (the server's inbound position then is where the cut is).
                due, dropped = playback.clear(now)
                await client.media_sent_through(now - client.t0)
                async with client.send_lock:
                    await client.send_answers(due)
                    if wire.echoes_marks_on_clear:
                        # Twilio sends the pending marks back although their audio never
                        # played.
                        for a in dropped:
                            report.marks_after_clear.append(a.name)
                            await client.send(link, wire.played(client.next_seq(), a.name))
                    answer = wire.cleared(client.next_seq())
                    if answer is not None:
                        await client.send(link, answer)
            case SendDtmf():
                pass  # tones played into the call: nothing to answer

    def _check_stream_id(self, event: str, sid: str | None) -> None:
        client = self._client
        stream_id = client.report.stream_id
        if sid is not None and sid != stream_id:
            client.report.add_error(
                f"{event} for streamId {sid!r}, but this stream is {stream_id!r}"
            )

    def _play_audio(self, cmd: PlayAudio, now: float) -> None:
        client = self._client
        report = client.report
        fmt = AudioFormat(cmd.encoding, cmd.sample_rate)  # checked by decode_command
        raw = cmd.payload
        try:
            pcm = fmt.decode(raw)
        except ValueError as exc:
            report.add_error(f"playAudio payload rejected: {exc}")
            return
        if self._echo is not None:
            rtt = self._echo.match(raw, now)
            if rtt is not None:
                report.echo_rtt_ms.append(rtt)
        rate = report.sample_rate
        if fmt.sample_rate != rate:
            resampler = self._resamplers.get(fmt.sample_rate)
            if resampler is None:
                # "QQ": sample-by-sample output, so resampling adds no playback latency.
                resampler = Resampler(fmt.sample_rate, rate, quality="QQ")
                self._resamplers[fmt.sample_rate] = resampler
            pcm = resampler.process(pcm)
        playback = client.playback
        assert playback is not None
        playback.enqueue_audio(pcm, now)
