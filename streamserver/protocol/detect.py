"""Which provider is on the other end, from its first message (sans-I/O).

- A binary frame: Vonage (the only dialect with binary frames).
- ``websocket:connected``: Vonage.
- ``connected`` with ``protocol: "Call"``: Twilio. A bare ``connected`` (Telnyx sends
  ``version``, Exotel nothing) does not tell Telnyx from Exotel: :func:`detect` returns
  None and the caller detects again on the next message (``start``).
- ``start`` (or any later event, should the opening be lost), by its ids: ``streamSid``/
  ``callSid`` Twilio, ``stream_id``/``call_control_id`` Telnyx, ``stream_sid``/``call_sid``
  Exotel, ``streamId``/``callId`` Plivo (whose first message is ``start``).

The caller then decodes the same message with the dialect found (a ``connected`` that did
not decide carries nothing and may be dropped). A route that pins a dialect skips all this:
:func:`get` returns the dialect for a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import exotel, telnyx, twilio, vonage
from .dialect import PLIVO, PLIVO_PROVIDER, Dialect, ProviderSide
from .events import ENCODING_L16, ENCODING_MULAW
from .neutral import (
    ENCODING_ALAW,
    ENCODING_L16_BE,
    EXOTEL,
    PROVIDERS,
    TELNYX,
    TWILIO,
    VONAGE,
    ProtocolError,
    decode_object,
)

__all__ = [
    "DIALECTS",
    "PROVIDER_FORMATS",
    "PROVIDER_SIDES",
    "detect",
    "detect_binary",
    "get",
    "get_provider",
    "provider_format",
]

#: Every server-side dialect by provider name.
DIALECTS: Mapping[str, Dialect] = {
    PLIVO.name: PLIVO,
    twilio.DIALECT.name: twilio.DIALECT,
    telnyx.DIALECT.name: telnyx.DIALECT,
    exotel.DIALECT.name: exotel.DIALECT,
    vonage.DIALECT.name: vonage.DIALECT,
}
#: The provider sides (replay client, load tester) by provider name.
PROVIDER_SIDES: Mapping[str, ProviderSide] = {
    p.name: p
    for p in (PLIVO_PROVIDER, twilio.PROVIDER, telnyx.PROVIDER, exotel.PROVIDER, vonage.PROVIDER)
}

_MULAW_8K = (ENCODING_MULAW, 8000)
_L16 = {rate: (ENCODING_L16, rate) for rate in (8000, 16000, 24000)}
#: The media formats each provider streams, as (encoding, rate), the first being the
#: default. Telnyx's ``L16`` is big-endian on the wire: :func:`provider_format` says so.
PROVIDER_FORMATS: Mapping[str, tuple[tuple[str, int], ...]] = {
    PLIVO.name: (_MULAW_8K, _L16[8000], _L16[16000]),
    TWILIO: (_MULAW_8K,),
    TELNYX: (_MULAW_8K, (ENCODING_ALAW, 8000), _L16[8000], _L16[16000]),
    EXOTEL: (_L16[8000], _L16[16000], _L16[24000]),
    VONAGE: (_L16[16000], _L16[8000]),
}


def get_provider(name: str) -> ProviderSide:
    """The provider side for a provider name (``--dialect twilio``)."""
    try:
        return PROVIDER_SIDES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; expected one of {PROVIDERS}") from None


def provider_format(provider: str, encoding: str, sample_rate: int) -> tuple[str, int]:
    """The wire format a provider streams for ``encoding`` at ``sample_rate`` (Telnyx L16 is
    big-endian, :data:`~.neutral.ENCODING_L16_BE`); ValueError naming the formats the
    provider has when it has no such one."""
    formats = PROVIDER_FORMATS[provider]
    wanted = (ENCODING_L16 if encoding == ENCODING_L16_BE else encoding, sample_rate)
    if wanted not in formats:
        have = ", ".join(f"{e};rate={r}" for e, r in formats)
        raise ValueError(
            f"{provider} streams have no {encoding};rate={sample_rate}; use one of: {have}"
        )
    if provider == TELNYX and wanted[0] == ENCODING_L16:
        return ENCODING_L16_BE, sample_rate
    return wanted


# Id fields, top level or inside the event's body, that only one dialect uses.
_MARKERS: tuple[tuple[str, Dialect], ...] = (
    ("streamSid", twilio.DIALECT),
    ("callSid", twilio.DIALECT),
    ("stream_id", telnyx.DIALECT),
    ("call_control_id", telnyx.DIALECT),
    ("stream_sid", exotel.DIALECT),
    ("call_sid", exotel.DIALECT),
    ("streamId", PLIVO),
    ("callId", PLIVO),
)


def get(name: str) -> Dialect:
    """The dialect for a provider name (``dialect = "twilio"`` on a route)."""
    try:
        return DIALECTS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; expected one of {PROVIDERS}") from None


def detect_binary() -> Dialect:
    """A binary first frame: only Vonage sends them."""
    return vonage.DIALECT


def detect(data: bytes | str) -> Dialect | None:
    """The dialect of a first text message, or None for a bare ``connected`` (Telnyx or
    Exotel: decide on the next message).

    Raises :class:`ProtocolError` (``json``, or ``dialect`` when the message is JSON but
    no known provider's) so the caller can close the socket with a clear reason.
    """
    raw = decode_object(data)
    event = raw.get("event")
    if isinstance(event, str) and event.startswith("websocket:"):
        return vonage.DIALECT
    if event == "connected":
        return twilio.DIALECT if raw.get("protocol") == "Call" else None
    found = _by_ids(raw)
    if found is None and isinstance(event, str) and isinstance(raw.get(event), dict):
        found = _by_ids(raw[event])  # e.g. start.callSid when the top level has no id
    if found is None:
        raise ProtocolError(
            "dialect", f"first message ({event!r}) is not Plivo, Twilio, Telnyx, Exotel or Vonage"
        )
    return found


def _by_ids(doc: dict[str, Any]) -> Dialect | None:
    for key, dialect in _MARKERS:
        if key in doc:
            return dialect
    return None
