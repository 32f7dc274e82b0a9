"""The one small interface every wire dialect offers, and the Plivo dialect behind it.

A dialect is pure: text or binary frame in, a neutral event out (:mod:`.events`,
:mod:`.neutral`); a command in, the bytes to send out. The session holds one
:class:`Dialect` per stream and calls it the way it calls :mod:`.plivo` today::

    event = dialect.decode(text)              # text frame -> event (ProtocolError if bad)
    event = dialect.decode_binary(data)       # binary frame: Media on Vonage, else
                                              # BinaryNotSupported (close 1003)
    out = dialect.encode_play(payload, encoding, rate, stream_id)
    send_binary(out) if dialect.binary_audio else send_text(out)
    send_text(dialect.encode_checkpoint(stream_id, name))
    send_text(dialect.encode_clear(stream_id))
    send_text(dialect.encode_dtmf(stream_id, digits))   # NotSupported where the provider
                                                        # has no DTMF out (all but Plivo)

What the session has to do differently per dialect, from the flags:

- ``play_frame_ms``: cut outbound audio in chunks of this duration (20 ms; Exotel 200 ms:
  its chunks must be ≥ 3.2 kB and a multiple of 320 bytes, and its ``encode_play`` pads
  the last chunk with silence to the next multiple of 320).
- ``pads_play_frames``: ``encode_play`` pads a short frame with silence to a whole play
  frame (Vonage's binary frames are always 20 ms): the provider plays the padding too.
- ``acks_clear``: True when the provider answers a clear with :class:`~.events.ClearedAudio`
  (Plivo ``clearedAudio``, Vonage ``websocket:cleared``); False (Twilio, Telnyx, Exotel)
  means nothing answers, so the session's own clear is the moment checkpoints sent before
  it resolve False.
- ``echoes_marks_after_clear``: the provider still answers the marks pending at a clear
  (Twilio documents it: a clear "causes any mark messages to be sent back"); those
  :class:`~.events.PlayedStream` must not count as played. The simple, exact way: send each
  checkpoint under a unique wire name (``name#n``), remember the clear epoch it was sent
  in, and resolve a returning name True only if no clear was sent after it.
- A :class:`~.events.Start` whose ``stream_id`` is ``""`` has no stream id (Vonage): the
  session generates one (a uuid4) unless the URL or the headers carry it.
- :class:`~.neutral.Connected` is informational: neither an unknown event nor a violation.

A dialect may also be *pinned* instead of detected (:func:`.detect.detect` picks one from
the first message); :data:`PLIVO` is the Plivo dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import plivo
from .events import Checkpoint as PlivoCheckpoint
from .events import ClearAudio, Media, PlayAudio, Start, Unknown
from .events import SendDtmf as PlivoSendDtmf
from .neutral import PLIVO as PLIVO_NAME
from .neutral import (
    AnyEvent,
    BinaryNotSupported,
    Checkpoint,
    Clear,
    Command,
    Play,
    ProtocolError,
    SendDtmf,
)

__all__ = [
    "PLIVO",
    "PLIVO_PROVIDER",
    "Dialect",
    "ProviderDialect",
    "ProviderSide",
    "ServerDialect",
    "plivo_provider",
    "text_only",
    "text_only_commands",
]

BytesLike = bytes | bytearray | memoryview


class Dialect(Protocol):
    """The server side of a provider's stream protocol (what :mod:`.session` needs)."""

    @property
    def name(self) -> str:
        """Provider name (``"plivo"``, ``"twilio"``, …), as ``StreamContext.provider`` says."""

    @property
    def binary_audio(self) -> bool:
        """Outbound audio (``encode_play``) goes in binary frames, not text (Vonage)."""

    @property
    def pads_play_frames(self) -> bool:
        """``encode_play`` pads a short frame with silence to a whole play frame."""

    @property
    def acks_clear(self) -> bool:
        """The provider answers a clear with ClearedAudio."""

    @property
    def echoes_marks_after_clear(self) -> bool:
        """Marks pending at a clear come back anyway and must resolve False."""

    @property
    def supports_dtmf_out(self) -> bool:
        """``encode_dtmf`` works (else it raises NotSupported)."""

    @property
    def play_frame_ms(self) -> int:
        """Duration of audio per outbound play frame."""

    def decode(self, data: bytes | str) -> AnyEvent:
        """One text frame -> event; ProtocolError (with ``kind``) if malformed."""

    def decode_binary(self, data: BytesLike) -> Media:
        """One binary frame -> Media; BinaryNotSupported on text-only dialects."""

    def encode_play(
        self, payload: bytes, encoding: str, sample_rate: int, stream_id: str | None
    ) -> bytes:
        """Encoded audio (μ-law, A-law or L16 bytes) -> one frame to send."""

    def encode_checkpoint(self, stream_id: str, name: str) -> bytes:
        """A mark the provider answers (PlayedStream) once the audio before it has played."""

    def encode_clear(self, stream_id: str) -> bytes:
        """Drop all queued, unplayed audio."""

    def encode_dtmf(self, stream_id: str, digits: str) -> bytes:
        """Play DTMF digits into the call; NotSupported where the provider has no such command."""


class ProviderSide(Protocol):
    """The provider's side of the same protocol, for the replay client and the load tester:
    build what the provider sends, read what the server sends.

    Encoders return ``None`` where the provider sends no such message (no ``connected`` on
    Plivo; no ``cleared`` on Twilio; no ``stop`` on Vonage, which just closes).
    """

    @property
    def name(self) -> str:
        """Provider name."""

    @property
    def binary_media(self) -> bool:
        """Media frames are binary WebSocket frames (Vonage), not text."""

    def encode_connected(self) -> bytes | None:
        """The message sent first, before ``start`` (None if the provider has none)."""

    def encode_start(self, start: Start) -> bytes:
        """The stream's start message for these ids and this format."""

    def encode_media(
        self,
        payload: bytes,
        stream_id: str,
        sequence_number: int,
        chunk: int,
        timestamp_ms: int,
        track: str,
    ) -> bytes:
        """One media frame (Vonage: the raw audio itself, sent as a binary frame)."""

    def encode_dtmf(self, digit: str, stream_id: str, sequence_number: int) -> bytes:
        """The caller pressed ``digit``."""

    def encode_played(self, name: str, stream_id: str, sequence_number: int) -> bytes:
        """The answer to a checkpoint (mark echo, Vonage notify)."""

    def encode_cleared(self, stream_id: str, sequence_number: int) -> bytes | None:
        """The answer to a clear, where the provider sends one."""

    def encode_stop(
        self,
        stream_id: str,
        call_id: str,
        account_id: str,
        sequence_number: int,
        reason: str | None,
    ) -> bytes | None:
        """The last message of the stream, where the provider sends one."""

    def decode_command(self, data: bytes | str) -> Command:
        """One text frame from the server -> command (ProtocolError if not one)."""

    def decode_command_binary(self, data: BytesLike) -> Command:
        """One binary frame from the server (Vonage audio) -> Play."""


@dataclass(frozen=True, slots=True)
class ServerDialect:
    """A :class:`Dialect` made of a module's functions (what every dialect module exports).

    The functions are stored as plain attributes, so ``d.decode(x)`` costs what a module
    function call costs.
    """

    name: str
    decode: Callable[[bytes | str], AnyEvent]
    decode_binary: Callable[[BytesLike], Media]
    encode_play: Callable[[bytes, str, int, str | None], bytes]
    encode_checkpoint: Callable[[str, str], bytes]
    encode_clear: Callable[[str], bytes]
    encode_dtmf: Callable[[str, str], bytes]
    binary_audio: bool = False
    pads_play_frames: bool = False
    acks_clear: bool = False
    echoes_marks_after_clear: bool = False
    supports_dtmf_out: bool = False
    play_frame_ms: int = 20


@dataclass(frozen=True, slots=True)
class ProviderDialect:
    """A :class:`ProviderSide` made of a module's functions."""

    name: str
    encode_connected: Callable[[], bytes | None]
    encode_start: Callable[[Start], bytes]
    encode_media: Callable[[bytes, str, int, int, int, str], bytes]
    encode_dtmf: Callable[[str, str, int], bytes]
    encode_played: Callable[[str, str, int], bytes]
    encode_cleared: Callable[[str, int], bytes | None]
    encode_stop: Callable[[str, str, str, int, str | None], bytes | None]
    decode_command: Callable[[bytes | str], Command]
    decode_command_binary: Callable[[BytesLike], Command]
    binary_media: bool = False


def text_only(provider: str) -> Callable[[BytesLike], Media]:
    """A ``decode_binary`` for a dialect that has no binary frames."""

    def decode_binary(data: BytesLike) -> Media:
        raise BinaryNotSupported(provider)

    return decode_binary


def text_only_commands(provider: str) -> Callable[[BytesLike], Command]:
    """A ``decode_command_binary`` for a dialect whose server sends no binary frames."""

    def decode_command_binary(data: BytesLike) -> Command:
        raise BinaryNotSupported(provider)

    return decode_command_binary


def _plivo_dtmf(stream_id: str, digits: str) -> bytes:
    return plivo.encode_send_dtmf(digits)  # Plivo's sendDTMF carries no stream id


#: The Plivo dialect (functions of :mod:`.plivo`) behind the common interface.
PLIVO = ServerDialect(
    name=PLIVO_NAME,
    decode=plivo.decode,
    decode_binary=text_only(PLIVO_NAME),
    encode_play=plivo.encode_play_audio,
    encode_checkpoint=plivo.encode_checkpoint,
    encode_clear=plivo.encode_clear_audio,
    encode_dtmf=_plivo_dtmf,
    acks_clear=True,
    supports_dtmf_out=True,
)


# --- Plivo's side behind ProviderSide ------------------------------------------------------
# plivo.py keeps its own positional, fast encoders (the emulator's client and the load
# tester's templates call them directly); this adapter only reorders arguments.


def _plivo_command(data: bytes | str) -> Command:
    cmd = plivo.decode_command(data)
    if type(cmd) is PlayAudio:
        return Play(cmd.payload, cmd.stream_id)
    match cmd:
        case PlivoCheckpoint(name=name, stream_id=sid):
            return Checkpoint(name, sid)
        case ClearAudio(stream_id=sid):
            return Clear(sid)
        case PlivoSendDtmf(digits=digits):
            return SendDtmf(digits)
        case Unknown(event=event):
            raise ProtocolError("schema", f"not a Plivo command: event {event!r}")
    raise AssertionError(f"unhandled command {type(cmd).__name__}")  # pragma: no cover


def plivo_provider(extra_headers: str = "") -> ProviderDialect:
    """Plivo's side as a :class:`ProviderSide`, with ``extra_headers`` (the text
    :func:`.plivo.format_extra_headers` writes) in ``start``, ``media`` and ``dtmf``.

    Plivo has no ``connected``; ``dtmf`` carries timestamp 0 (the interface has none: the
    stream client calls :func:`.plivo.encode_dtmf` itself to send the digit's time);
    ``decode_command`` drops ``playAudio``'s format (the stream's) and rejects commands
    Plivo does not know, which :func:`.plivo.decode_command` returns as ``Unknown``.
    """

    def start(s: Start) -> bytes:
        return plivo.encode_start(
            s.sequence_number or 1, s.call_id, s.stream_id, s.account_id, s.tracks,
            s.encoding, s.sample_rate, extra_headers,
        )  # fmt: skip

    def media(
        payload: bytes, stream_id: str, seq: int, chunk: int, timestamp_ms: int, track: str
    ) -> bytes:
        return plivo.encode_media(
            seq, stream_id, track, timestamp_ms, chunk, payload, extra_headers
        )

    def dtmf(digit: str, stream_id: str, seq: int) -> bytes:
        return plivo.encode_dtmf(seq, stream_id, digit, 0, "inbound", extra_headers)

    def played(name: str, stream_id: str, seq: int) -> bytes:
        return plivo.encode_played_stream(seq, stream_id, name)

    def cleared(stream_id: str, seq: int) -> bytes:
        return plivo.encode_cleared_audio(seq, stream_id)

    def stop(stream_id: str, call_id: str, account_id: str, seq: int, reason: str | None) -> bytes:
        return plivo.encode_stop(seq, call_id, stream_id, ("inbound",))

    return ProviderDialect(
        name=PLIVO_NAME,
        encode_connected=_no_connected,
        encode_start=start,
        encode_media=media,
        encode_dtmf=dtmf,
        encode_played=played,
        encode_cleared=cleared,
        encode_stop=stop,
        decode_command=_plivo_command,
        decode_command_binary=text_only_commands(PLIVO_NAME),
    )


def _no_connected() -> None:
    return None


#: Plivo's side (no extra headers), for the replay client and the load tester.
PLIVO_PROVIDER = plivo_provider()
