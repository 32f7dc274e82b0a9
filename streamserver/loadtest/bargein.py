"""Barge-in bookkeeping: one stream's turns of the bot profile and how each one ended.

In each turn (:class:`~streamserver.loadtest.bot.BotScript`) the bot talks and the caller
starts speaking at a known frame. A turn ends one of three ways:

- **barged in**: the server's clear arrived after the caller's speech onset was sent; the
  latency is from that send to the clear's arrival (or from the bot's first audio of the
  turn, when the bot only started talking after the caller had: the caller cannot
  interrupt what has not begun);
- **missed**: the bot was heard, the caller spoke, and no clear came before the turn
  ended (the caller and the bot talked over each other);
- **not measured**: the bot never spoke in the turn, or the call ended before the caller
  did.

A clear that answers nothing (before the caller spoke, before the bot did, or a second
one in the same turn) is *unexpected*. No timers, no I/O: the stream calls these when it
reads a clear and when a turn or the call ends.
"""

from __future__ import annotations

from .bot import BotScript

__all__ = ["Turns"]


class Turns:
    """One stream's position in the bot script and the state of its current turn."""

    __slots__ = ("cleared", "heard", "script", "turn")

    def __init__(self, script: BotScript) -> None:
        self.script = script
        self.turn = 0
        #: Arrival time of the bot's first audio in this turn (0.0: none yet).
        self.heard = 0.0
        self.cleared = False

    @property
    def onset(self) -> int:
        """The frame index at which the caller starts speaking in the current turn."""
        return self.script.onset(self.turn)

    def heard_audio(self, t: float) -> None:
        """The bot's audio began (a new spurt) at ``t``."""
        if not self.heard:
            self.heard = t

    def clear(self, t: float, sent: int, onset_sent_at: float) -> float | None:
        """The server's clear arrived at ``t``, after the stream had sent ``sent`` frames;
        ``onset_sent_at`` is when the onset frame went out (0.0: unknown). Returns the
        barge-in latency in milliseconds, or None for an unexpected clear."""
        if self.cleared or not self.heard or sent <= self.onset or onset_sent_at <= 0.0:
            return None
        self.cleared = True
        return (t - max(onset_sent_at, self.heard)) * 1000.0

    def next_turn(self, sent: int) -> bool:
        """The caller begins the next turn after ``sent`` frames; True when the turn that
        ends was a missed barge-in."""
        missed = self.finish(sent)
        self.turn += 1
        self.heard = 0.0
        self.cleared = False
        return missed

    def finish(self, sent: int) -> bool:
        """The current turn ends (so does the call); True when it was a missed barge-in."""
        return bool(self.heard) and not self.cleared and sent > self.onset
