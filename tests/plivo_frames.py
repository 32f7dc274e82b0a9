"""Builders for Plivo -> server frames, exactly as the reference shows them, and JSON value
strategies (for tests)."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

#: Any JSON value (for property tests of the decoders).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def start(
    stream_id: str = "b77e037d-4119-44b5-902d-25826b654539",
    call_id: str = "a1b2c3d4-0000-4000-8000-000000000001",
    *,
    encoding: str = "audio/x-mulaw",
    rate: int = 8000,
    tracks: tuple[str, ...] = ("inbound",),
    extra_headers: str | None = "",
    seq: int | str = 1,
    account_id: str = "MAXXXXXXXXXXXXXXXXXX",
) -> str:
    doc: dict[str, Any] = {
        "event": "start",
        "sequenceNumber": seq,
        "start": {
            "callId": call_id,
            "streamId": stream_id,
            "accountId": account_id,
            "tracks": list(tracks),
            "mediaFormat": {"encoding": encoding, "sampleRate": rate},
        },
    }
    if extra_headers is not None:
        doc["extra_headers"] = extra_headers
    return json.dumps(doc)


def media(
    payload: bytes,
    chunk: int | None,
    *,
    track: str = "inbound",
    seq: int | str | None = None,
    timestamp: int | str | None = None,
    stream_id: str = "b77e037d-4119-44b5-902d-25826b654539",
) -> str:
    body: dict[str, Any] = {"track": track, "payload": base64.b64encode(payload).decode()}
    if chunk is not None:
        body["chunk"] = chunk
    if timestamp is not None:
        body["timestamp"] = str(timestamp)
    doc: dict[str, Any] = {"event": "media", "streamId": stream_id, "media": body}
    if seq is not None:
        doc["sequenceNumber"] = seq
    return json.dumps(doc)


def dtmf(digit: str, *, track: str = "inbound", timestamp: int = 0, seq: int = 0) -> str:
    return json.dumps(
        {
            "event": "dtmf",
            "sequenceNumber": seq,
            "streamId": "b77e037d-4119-44b5-902d-25826b654539",
            "dtmf": {"digit": digit, "track": track, "timestamp": str(timestamp)},
        }
    )


def stop(stream_id: str = "b77e037d-4119-44b5-902d-25826b654539") -> str:
    return json.dumps({"event": "stop", "streamId": stream_id})
