"""The frames one provider-side stream sends and how it reads the server's, per dialect.

:class:`ClientWire` is the stream client's only view of the wire protocol. Plivo's frames
come from :mod:`streamserver.protocol.plivo` directly (``extra_headers`` on every frame, the
DTMF digit's own timestamp, ``playAudio`` with its own format); every other provider's
from its :class:`~streamserver.protocol.dialect.ProviderSide`, with the server's commands
mapped to the same :mod:`~streamserver.protocol.events` commands, so the client and its
report handle one set of types whatever the dialect:

- Twilio/Telnyx/Exotel ``media`` and Vonage binary audio -> :class:`PlayAudio` in the
  stream's own format (those providers play only that);
- ``mark`` / Vonage ``notify`` -> :class:`Checkpoint`; ``clear`` -> :class:`ClearAudio`.

How each provider answers: a checkpoint with ``playedStream`` (Plivo), a ``mark`` echo
(Twilio, Telnyx, Exotel) or ``websocket:notify`` (Vonage); a clear with ``clearedAudio``
(Plivo), ``websocket:cleared`` (Vonage) or nothing. Twilio also echoes the marks still
pending at a clear (:attr:`ClientWire.echoes_marks_on_clear`).
"""

from __future__ import annotations

from collections.abc import Mapping

from ...protocol import (
    Checkpoint,
    ClearAudio,
    Command,
    PlayAudio,
    ProtocolError,
    SendDtmf,
    Start,
    plivo,
)
from ...protocol import neutral as n
from ...protocol.detect import get_provider

__all__ = ["ClientWire"]


class ClientWire:
    """One stream's ids and format, and the frames of its dialect. Sequence numbers are
    the caller's (one counter over every message of the stream)."""

    def __init__(
        self,
        dialect: str,
        *,
        call_id: str,
        stream_id: str,
        account_id: str,
        tracks: tuple[str, ...],
        encoding: str,
        sample_rate: int,
        extra_headers: Mapping[str, str],
    ) -> None:
        self.name = dialect
        self._plivo = dialect == n.PLIVO
        self._side = get_provider(dialect)
        self.binary_media = self._side.binary_media
        self.echoes_marks_on_clear = dialect == n.TWILIO
        self._call_id, self._stream_id, self._account_id = call_id, stream_id, account_id
        self._tracks = tracks
        self._encoding, self._rate = encoding, sample_rate
        self._headers = dict(extra_headers)
        self._extra = plivo.format_extra_headers(extra_headers) if self._plivo else ""

    # --- provider -> server ---------------------------------------------------------------

    def opening(self, seq: int) -> list[bytes]:
        """The first messages: ``connected`` where the provider sends one, then ``start``
        (sequence number ``seq``)."""
        if self._plivo:
            start = plivo.encode_start(
                seq, self._call_id, self._stream_id, self._account_id, self._tracks,
                self._encoding, self._rate, self._extra,
            )  # fmt: skip
            return [start]
        ids = Start(
            self._stream_id,
            self._call_id,
            self._account_id,
            self._tracks,
            self._encoding,
            self._rate,
            self._headers,
            seq,
        )
        connected = self._side.encode_connected()
        frames = [] if connected is None else [connected]
        frames.append(self._side.encode_start(ids))
        return frames

    def media(self, seq: int, track: str, timestamp_ms: int, chunk: int, payload: bytes) -> bytes:
        """One media frame (Vonage: the audio itself, to send as a binary frame)."""
        if self._plivo:
            return plivo.encode_media(
                seq, self._stream_id, track, timestamp_ms, chunk, payload, self._extra
            )
        return self._side.encode_media(payload, self._stream_id, seq, chunk, timestamp_ms, track)

    def dtmf(self, seq: int, digit: str, timestamp_ms: int) -> bytes:
        """The caller pressed ``digit`` at ``timestamp_ms``."""
        if self._plivo:
            return plivo.encode_dtmf(
                seq, self._stream_id, digit, timestamp_ms, "inbound", self._extra
            )
        return self._side.encode_dtmf(digit, self._stream_id, seq)

    def played(self, seq: int, name: str) -> bytes:
        """The answer to checkpoint ``name`` once its audio has played."""
        return self._side.encode_played(name, self._stream_id, seq)

    def cleared(self, seq: int) -> bytes | None:
        """The answer to a clear, where the provider sends one."""
        return self._side.encode_cleared(self._stream_id, seq)

    def stop(self, seq: int) -> bytes | None:
        """The last message (None on Vonage, which just closes)."""
        if self._plivo:
            return plivo.encode_stop(seq, self._call_id, self._stream_id, self._tracks)
        return self._side.encode_stop(self._stream_id, self._call_id, self._account_id, seq, None)

    # --- server -> provider ---------------------------------------------------------------

    def decode(self, message: str) -> Command:
        """A text frame from the server as a command (ProtocolError if not one)."""
        if self._plivo:
            return plivo.decode_command(message)
        return self._command(self._side.decode_command(message))

    def decode_binary(self, data: bytes) -> Command:
        """A binary frame from the server (Vonage audio); BinaryNotSupported elsewhere."""
        return self._command(self._side.decode_command_binary(data))

    def _command(self, cmd: n.Command) -> Command:
        match cmd:
            case n.Play(payload=payload, stream_id=sid):
                return PlayAudio(payload, self._encoding, self._rate, sid)
            case n.Checkpoint(name=name, stream_id=sid):
                return Checkpoint(name, sid)
            case n.Clear(stream_id=sid):
                return ClearAudio(sid)
            case n.SendDtmf(digits=digits):
                return SendDtmf(digits)
        raise ProtocolError("schema", f"unexpected command {type(cmd).__name__}")
