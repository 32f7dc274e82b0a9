"""The server's bus: one connection shared by its events and its commands."""

from __future__ import annotations

from .commands import CommandServer
from .connection import BusConnection
from .events import EventPublisher
from .settings import BusSettings

__all__ = ["Bus"]


class Bus:
    """The server's bus: one connection, its :class:`EventPublisher` (``events``) and its
    :class:`CommandServer` (``commands``). :meth:`start` never waits for NATS."""

    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings
        self.connection = BusConnection(settings)
        self.events = EventPublisher(self.connection)
        self.commands = CommandServer(self.connection)

    async def start(self) -> None:
        await self.events.start()
        await self.connection.start()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Stop answering commands, send the waiting events (up to ``timeout_s``), close."""
        await self.commands.aclose()
        await self.events.aclose(timeout_s)
        await self.connection.aclose()
