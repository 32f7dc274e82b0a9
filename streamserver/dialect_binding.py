"""Which dialect a stream speaks: pinned by its route, or detected from its first message.

:class:`DialectBinding` hands the session a decoder. An auto-detected stream starts with
:meth:`DialectBinding.detect_first`, which picks the dialect from the first message
(:func:`streamserver.protocol.detect.detect`) and then binds it: the session's decoder
becomes the dialect's own ``decode``, so the per-frame path is one call whatever the
provider. A bare ``connected`` (Telnyx, Exotel) waits for ``start``; a message with no
provider's ids is read as Plivo, and the next message is examined again. A binary first
frame means Vonage (:meth:`DialectBinding.detect_binary`).
"""

from __future__ import annotations

from collections.abc import Callable

from .protocol import detect, plivo
from .protocol.dialect import Dialect
from .protocol.neutral import AnyEvent, Connected

__all__ = ["DialectBinding"]


class DialectBinding:
    """The decoder of one stream until its dialect is known; ``bind`` is told the dialect."""

    __slots__ = ("_bind",)

    def __init__(self, bind: Callable[[Dialect], None]) -> None:
        self._bind = bind

    def pin(self, name: str) -> None:
        """The route names the dialect: bind it before any message."""
        self._bind(detect.get(name))

    def detect_first(self, data: bytes) -> AnyEvent:
        """Decode a message of a stream whose dialect is not known yet (and maybe bind it)."""
        try:
            dialect = detect.detect(data)
        except plivo.ProtocolError as exc:
            if exc.kind != "dialect":
                raise
            # No provider's ids: read it as Plivo (the first dialect) would, and detect
            # again on the next message.
            return plivo.decode(data)
        if dialect is None:
            return Connected()  # a bare 'connected' (Telnyx or Exotel): decide on 'start'
        self._bind(dialect)
        return dialect.decode(data)

    def detect_binary(self) -> Dialect:
        """A binary frame before any dialect is known: Vonage's audio; bind it."""
        dialect = detect.detect_binary()
        self._bind(dialect)
        return dialect
