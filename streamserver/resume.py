"""A stream that comes back on a new socket continues where it left off (no sockets here).

Providers reconnect: Plivo retries a stream whose socket failed, a network path dies
without a FIN and the provider opens a new one, a retry races a socket the server still
believes alive. Whatever the case, a ``start`` with the ids (route, stream id, call id) of
a stream that is live, or that ended abnormally less than ``keep_s`` ago, is the same
stream: :class:`Resumes` hands the new session where the old one left off.

- **Takeover.** A live session holding the ids is ended first (``StopReason.REPLACED``,
  its socket closed with 1000 "replaced by a newer connection"): the newest socket wins,
  as a provider only opens one when it believes the other gone.
- **Resume.** The new session's tracks continue the old timelines: the next expected
  chunk, the sample position, the timestamp origin (:class:`TrackState`). Chunks that
  carry on (the caller's timeline went on meanwhile) place the new audio exactly, the
  frames lost in between become a gap; a provider that restarts its chunks at 1 is
  resynced, its audio appended. Handlers see ``StreamContext.resumed`` (where each track
  left off) and ``StreamContext.connection`` (2 for the first reconnect), so a recorder
  writes one file per track across every connection of the stream.

Only abnormal ends are kept (a transport error, a timeout, a takeover): after a ``stop``
or a normal close the stream is over, and a later socket with the same ids is new.
Process-local: a reconnect that lands on another worker or host starts a new stream.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .audio import AudioFormat
from .ordering import TrackOrder

__all__ = ["MAX_KEPT", "Continuation", "Resumable", "Resume", "Resumes", "TrackState"]

#: Ended streams remembered at most (the oldest are forgotten first).
MAX_KEPT = 10_000

Key = tuple[str, str, str]  # (route path, stream id, call id)


@dataclass(frozen=True, slots=True)
class TrackState:
    """Where one track's timeline stands: the next chunk expected, the next sample
    position, the first timestamp (ms, None: not placed by time) and frames delivered."""

    next_chunk: int
    next_pos: int
    ts0: int | None
    frames: int


@dataclass(frozen=True, slots=True)
class Resume:
    """What an earlier connection of a stream leaves the next one."""

    fmt: AudioFormat
    tracks: dict[str, TrackState]
    #: connections of the stream so far (the new one is ``connections + 1``)
    connections: int


class Resumable(Protocol):
    """What :class:`Resumes` needs of a live session."""

    def hand_over(self) -> Resume:
        """End now (``StopReason.REPLACED``) and say where the stream stands."""
        ...


class Resumes:
    """The streams of one process by ids: the live ones, and those that ended abnormally
    within ``keep_s`` seconds (0 disables resuming and takeover)."""

    def __init__(
        self, keep_s: float = 30.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.keep_s = keep_s
        self._clock = clock
        self._live: dict[Key, Resumable] = {}
        self._ended: OrderedDict[Key, tuple[float, Resume]] = OrderedDict()

    def arrive(self, key: Key, session: Resumable) -> tuple[Resume | None, bool]:
        """``session`` started with ``key``: end a live holder of it (a takeover) or pick
        up an ended one. Returns where the stream stands (None: it is new) and whether a
        live session was taken over."""
        if not self.keep_s:
            return None, False
        prior: Resume | None = None
        live = self._live.pop(key, None)
        if live is not None:
            prior = live.hand_over()
        else:
            kept = self._ended.pop(key, None)
            if kept is not None and self._now() - kept[0] <= self.keep_s:
                prior = kept[1]
        self._live[key] = session
        return prior, live is not None

    def leave(self, key: Key, session: Resumable, state: Resume | None) -> None:
        """``session`` ended; ``state`` (None: the stream is over) is kept for a reconnect."""
        if self._live.get(key) is session:
            del self._live[key]
        if state is None or not self.keep_s:
            return
        ended = self._ended
        ended[key] = (self._now(), state)
        ended.move_to_end(key)
        cutoff = self._now() - self.keep_s
        while ended and (len(ended) > MAX_KEPT or next(iter(ended.values()))[0] < cutoff):
            ended.popitem(last=False)

    def forget(self, key: Key, session: Resumable) -> None:
        """``session`` handed its stream over: it holds nothing any more."""
        if self._live.get(key) is session:
            del self._live[key]

    @property
    def live(self) -> int:
        """Streams registered live."""
        return len(self._live)

    @property
    def kept(self) -> int:
        """Ended streams kept for a reconnect."""
        return len(self._ended)

    def _now(self) -> float:
        return self._clock()


class Continuation:
    """One session's place among the :class:`Resumes` of its process: registered at its
    start (:meth:`arrive`), it continues what an earlier connection left (:meth:`seed`)
    and leaves its own timelines when it ends (:meth:`leave`)."""

    __slots__ = ("connection", "key", "prior", "resumes")

    def __init__(self, resumes: Resumes | None) -> None:
        self.resumes = resumes
        self.key: Key | None = None
        self.prior: Resume | None = None
        #: which connection of its stream the session is (2+: it resumed an earlier one)
        self.connection = 1

    def arrive(
        self,
        key: Key,
        session: Resumable,
        fmt: AudioFormat,
        logger: logging.LoggerAdapter[logging.Logger],
    ) -> bool:
        """Register ``key``; True when a live session of it was taken over."""
        resumes = self.resumes
        if resumes is None:
            return False
        self.key = key
        prior, took_over = resumes.arrive(key, session)
        if prior is not None and prior.fmt != fmt:
            logger.warning(
                "a new connection of this stream in %s (was %s): not resumed",
                fmt.content_type,
                prior.fmt.content_type,
            )
            prior = None
        if prior is not None:
            self.prior = prior
            self.connection = prior.connections + 1
            logger.info(
                "connection %d of this stream: resuming at %s",
                self.connection,
                ", ".join(f"{t} sample {s.next_pos}" for t, s in prior.tracks.items()) or "-",
            )
        return took_over

    def seed(self, tracks: Mapping[str, TrackOrder]) -> dict[str, int]:
        """Continue the earlier connection's timelines; where each track resumes."""
        prior = self.prior
        resumed: dict[str, int] = {}
        if prior is None:
            return resumed
        for name, tr in tracks.items():
            state = prior.tracks.get(name)
            if state is not None:
                tr.seed(state.next_chunk, state.next_pos, state.ts0, state.frames)
                resumed[name] = state.next_pos
        return resumed

    def timelines(self, fmt: AudioFormat, tracks: Mapping[str, TrackOrder]) -> Resume:
        """Where this connection's tracks stand now."""
        states = {
            name: TrackState(tr.next_chunk, tr.next_pos, tr.ts0, tr.frames)
            for name, tr in tracks.items()
        }
        return Resume(fmt, states, self.connection)

    def leave(
        self,
        session: Resumable,
        keep: bool,
        fmt: AudioFormat | None,
        tracks: Mapping[str, TrackOrder],
    ) -> None:
        """The session ended; with ``keep`` (its socket failed) a reconnect may resume it."""
        key, resumes = self.key, self.resumes
        if key is None or resumes is None:
            return
        state = self.timelines(fmt, tracks) if keep and fmt is not None else None
        resumes.leave(key, session, state)
