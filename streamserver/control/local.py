"""What the control app does with this process's streams: list them, hand them a callback.

Shared by the control app and by :mod:`streamserver.worker_peers`, through which the
other workers of a host answer the same questions for their own streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..handler import BusEvent

if TYPE_CHECKING:
    from ..net import StreamServer

__all__ = ["CALLBACK_TOPIC", "Callback", "CallbackKind", "deliver_callback", "stream_rows"]

#: Bus topic of the events a callback publishes to its call's live streams.
CALLBACK_TOPIC = "plivo.callback"

CallbackKind = Literal["stream", "hangup", "recording"]


@dataclass(frozen=True)
class Callback:
    """One verified callback from Plivo, as listeners and handlers see it.

    ``kind`` is the endpoint (``stream``, ``hangup``, ``recording``); ``event`` Plivo's
    ``Event`` field (``StartStream``, ``Hangup``...) when it sends one; ``params`` every
    form field (treat as read-only); ``delivered`` how many live streams were notified
    (in the process that handles it; the control app's listeners get the host's total).
    """

    kind: CallbackKind
    event: str
    call_uuid: str
    stream_id: str
    params: Mapping[str, str]
    delivered: int = 0
    received_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """As JSON (for another worker)."""
        return {
            "kind": self.kind,
            "event": self.event,
            "call_uuid": self.call_uuid,
            "stream_id": self.stream_id,
            "params": dict(self.params),
            "received_at": self.received_at,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Callback:
        """From :meth:`to_dict` (``ValueError`` when it is not one)."""
        kind = doc.get("kind")
        params = doc.get("params")
        if kind not in ("stream", "hangup", "recording") or not isinstance(params, dict):
            raise ValueError("not a callback")
        return cls(
            kind=kind,
            event=str(doc.get("event", "")),
            call_uuid=str(doc.get("call_uuid", "")),
            stream_id=str(doc.get("stream_id", "")),
            params={str(k): str(v) for k, v in params.items()},
            received_at=float(doc.get("received_at", 0.0)),
        )


def stream_rows(server: StreamServer) -> list[dict[str, Any]]:
    """The live streams of ``server`` as ``/streams`` lists them (started, not ended)."""
    rows = []
    for session in server.active_sessions():
        if not session.started or session.ended:
            continue  # not yet started, or ended with its handlers finishing
        row = session.summary()
        row["started_at"] = session.started_at_wall
        rows.append(row)
    return rows


def deliver_callback(server: StreamServer, cb: Callback) -> int:
    """Publish ``cb`` to the live streams of ``server`` it concerns; how many.

    A callback naming a stream goes to that stream; one naming only the call goes to every
    stream of the call."""
    targets = [
        s
        for s in server.active_sessions()
        if s.started
        and not s.ended
        and (s.stream_id == cb.stream_id if cb.stream_id else s.call_id == cb.call_uuid)
    ]
    if targets:
        delivered = Callback(
            cb.kind, cb.event, cb.call_uuid, cb.stream_id, cb.params, len(targets),
            cb.received_at,
        )  # fmt: skip
        event = BusEvent(CALLBACK_TOPIC, delivered, "control")
        for session in targets:
            session.publish(event)
    return len(targets)
