"""Provider-neutral names shared by every dialect beyond what :mod:`.events` defines.

- Provider names (``PLIVO`` … ``VONAGE``) and encodings the further dialects bring: G.711
  A-law (Telnyx ``PCMA``) and big-endian L16 (Telnyx ``L16``, RTP's network byte order).
- Two inbound events only some dialects send: :class:`Connected` (Twilio/Telnyx/Exotel open
  with it; it carries nothing a stream needs) and :class:`ProviderError` (Telnyx ``error``).
- The commands the server sends, as the *provider side* (replay client, load tester) decodes
  them: :class:`Play`, :class:`Checkpoint`, :class:`Clear`, :class:`SendDtmf`.
- The error tree. The root stays :class:`~.plivo.ProtocolError` so one ``except`` in the
  session covers every dialect::

      ProtocolError (ValueError)       kind: json | schema | value | base64 | binary | ...
      ├── BinaryNotSupported           kind "binary": close with 1003 (unsupported data)
      └── NotSupported                 kind "unsupported": a command the provider lacks
"""

from __future__ import annotations

from typing import Any

import msgspec

from .events import Event, Unknown
from .plivo import ProtocolError
from .websocket import CloseCode

__all__ = [
    "ENCODING_ALAW",
    "ENCODING_L16_BE",
    "EXOTEL",
    "PLIVO",
    "PROVIDERS",
    "TELNYX",
    "TWILIO",
    "VONAGE",
    "AnyEvent",
    "BinaryNotSupported",
    "Checkpoint",
    "Clear",
    "Command",
    "Connected",
    "NotSupported",
    "Play",
    "ProtocolError",
    "ProviderError",
    "SendDtmf",
    "decode_failure",
    "decode_object",
    "str_values",
    "unreadable",
]

PLIVO = "plivo"
TWILIO = "twilio"
TELNYX = "telnyx"
EXOTEL = "exotel"
VONAGE = "vonage"
PROVIDERS = (PLIVO, TWILIO, TELNYX, EXOTEL, VONAGE)

#: ITU-T G.711 A-law, one byte per sample, 8000 Hz (Telnyx ``PCMA``).
ENCODING_ALAW = "audio/x-alaw"
#: Signed 16-bit linear PCM in network byte order (big-endian), as RTP carries L16
#: (RFC 3551 §4.5.11): Telnyx ``L16``. ``audio/x-l16`` (Plivo, Exotel, Vonage) is little-endian.
ENCODING_L16_BE = "audio/x-l16-be"


class Connected(msgspec.Struct, frozen=True):
    """The provider's first message before ``start`` (Twilio, Telnyx, Exotel): informational.

    Twilio sends ``protocol="Call"``; a session ignores it (it is not an unknown event).
    """

    protocol: str | None = None
    version: str | None = None


class ProviderError(msgspec.Struct, frozen=True):
    """The provider reports an error on the stream (Telnyx ``error``): log it, keep going."""

    code: str | None
    title: str | None
    detail: str | None
    sequence_number: int | None = None
    stream_id: str | None = None


#: Everything a dialect's ``decode`` may return.
AnyEvent = Event | Connected | ProviderError


# --- what the server sends, as the provider side reads it ---------------------------------


class Play(msgspec.Struct, frozen=True, gc=False):
    """Audio to play to the caller (``payload`` already decoded from base64 / binary)."""

    payload: bytes
    stream_id: str | None = None


class Checkpoint(msgspec.Struct, frozen=True):
    """A mark/notify: answer with the played event once the audio before it has played."""

    name: str
    stream_id: str | None = None


class Clear(msgspec.Struct, frozen=True):
    """Drop all queued, unplayed audio (barge-in)."""

    stream_id: str | None = None


class SendDtmf(msgspec.Struct, frozen=True):
    """Play DTMF tones into the call."""

    digits: str
    stream_id: str | None = None


Command = Play | Checkpoint | Clear | SendDtmf


# --- errors ---------------------------------------------------------------------------------


class BinaryNotSupported(ProtocolError):
    """A binary WebSocket frame on a dialect that only speaks text (all but Vonage).

    ``close_code`` is 1003 (RFC 6455 §7.4.1: a type of data the endpoint cannot accept).
    """

    close_code = CloseCode.UNSUPPORTED_DATA

    def __init__(self, provider: str) -> None:
        super().__init__("binary", f"binary frames are not valid on {provider} streams")
        self.provider = provider


class NotSupported(ProtocolError):
    """The server asked for a command the provider does not offer (e.g. DTMF on Twilio)."""

    def __init__(self, provider: str, command: str, hint: str = "") -> None:
        reason = f"{provider} streams do not support {command}"
        super().__init__("unsupported", f"{reason}; {hint}" if hint else reason)
        self.provider = provider
        self.command = command


def str_values(fields: dict[str, Any]) -> dict[str, str]:
    """Keep the string-valued entries (numbers as text) of a provider's free-form object."""
    out: dict[str, str] = {}
    for key, value in fields.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[key] = str(value)
    return out


_any_decoder = msgspec.json.Decoder()


def unreadable(exc: UnicodeError | RecursionError) -> ProtocolError:
    """msgspec raises these (not DecodeError) for bad UTF-8 in strings and deep nesting."""
    if isinstance(exc, RecursionError):
        return ProtocolError("json", "not valid JSON: nested too deeply")
    return ProtocolError("json", f"not valid UTF-8 text: {exc}")


def decode_object(data: bytes | str) -> dict[str, Any]:
    """Decode a frame that must be a JSON object (cold paths: detection, rare events).

    Raises :class:`ProtocolError` (``json``) for anything else.
    """
    try:
        raw = _any_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolError("json", f"not valid JSON: {exc}") from None
    except (UnicodeError, RecursionError) as exc:
        raise unreadable(exc) from None
    if not isinstance(raw, dict):
        raise ProtocolError("json", f"frame must be a JSON object, got {type(raw).__name__}")
    return raw


def decode_failure(
    data: bytes | str, error: str, known: frozenset[str], seq_key: str, sid_key: str
) -> Unknown:
    """A dialect's typed decode failed with ``error``: an unknown event is fine (returned as
    :class:`Unknown`), a broken known one raises :class:`ProtocolError` with its kind.

    ``seq_key`` and ``sid_key`` name the dialect's top-level sequence number and stream id
    fields, kept on the :class:`Unknown` when they have the right type.
    """
    # The typed decoder skips unknown fields unread; this full parse may hit bad UTF-8 there.
    raw = decode_object(data)
    event = raw.get("event")
    if not isinstance(event, str):
        raise ProtocolError("schema", "frame has no string 'event' field")
    if event in known:
        if "base64" in error:
            kind = "base64"
        elif "got `str`" in error and "Expected `int" in error:
            kind = "value"  # a digit string was expected (lax decoding) and this is not one
        else:
            kind = "schema"
        raise ProtocolError(kind, f"{event}: {error}")
    seq = raw.get(seq_key)
    if type(seq) is str and seq.isdigit() and seq.isascii():
        seq = int(seq)
    sid = raw.get(sid_key)
    return Unknown(
        event,
        raw,
        seq if type(seq) is int else None,
        sid if isinstance(sid, str) else None,
    )
