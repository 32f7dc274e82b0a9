"""``[handler.webhook]``: one table for the in-process handler and the JetStream relay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

__all__ = ["DEFAULT_EVENTS", "DELIVERY_MODES", "WebhookOptions"]

DEFAULT_EVENTS = ("stream.start", "stream.stop", "dtmf", "transcript", "handler.error")
DELIVERY_MODES = ("inline", "jetstream")


class WebhookOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[handler.webhook]`` options."""

    #: Where events are POSTed (required: without it the handler sends nothing).
    url: str = ""
    #: HMAC key for the signature header; or the name of an environment variable holding it.
    #: Neither: requests are not signed.
    secret: str = ""
    secret_env: str = ""
    #: Events to forward: the built-in ones and any other bus topic.
    events: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_EVENTS))
    #: Extra request headers (e.g. an Authorization for your endpoint).
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    #: "inline": the media worker POSTs (a queue per process). "jetstream": the workers
    #: send nothing; ``streamserver webhook relay`` delivers the bus's events from a durable
    #: JetStream consumer, in its own process ([bus] must be configured).
    mode: Literal["inline", "jetstream"] = "inline"
    #: The relay's durable consumer: relays sharing the name share the work and resume
    #: where the last one stopped.
    durable: str = "streamserver-webhook"
    timeout_s: float = 5.0
    #: Tries per event, the first included.
    max_attempts: int = 5
    #: Wait before retry n: backoff_initial_s * 2**(n-1), at most backoff_max_s, jittered.
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    #: Events waiting to be sent, for the whole process; more are dropped (inline mode).
    max_queue: int = 1000
    #: Requests in flight at once, for the whole process.
    concurrency: int = 4
    #: At stream end, wait this long for the stream's events to be delivered (inline mode).
    flush_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        if self.max_attempts < 1 or self.max_queue < 1 or self.concurrency < 1:
            raise ValueError("max_attempts, max_queue and concurrency must be at least 1")
        if self.timeout_s <= 0 or self.backoff_initial_s < 0 or self.flush_timeout_s < 0:
            raise ValueError("timeout_s must be > 0; backoff and flush times >= 0")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        if not self.events:
            raise ValueError("events is empty: nothing would be sent")
        if not self.durable or any(c in self.durable for c in " .*>"):
            raise ValueError(f"durable {self.durable!r} must be a name without . * > or spaces")

    @classmethod
    def from_table(cls, table: Mapping[str, object]) -> WebhookOptions:
        """From a raw ``[handler.webhook]`` table; ``ValueError`` names what is wrong."""
        try:
            return msgspec.convert(dict(table), cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"handler.webhook: {exc}") from None

    def secret_value(self, environ: Mapping[str, str]) -> str:
        """The signing key: ``secret``, else the variable ``secret_env`` names, else none."""
        if self.secret:
            return self.secret
        return environ.get(self.secret_env, "") if self.secret_env else ""
