"""Where the server's playback sounded on the caller's side (pure: no I/O, no asyncio).

:class:`HeardTrack` is fed what the server played back and what the provider answered
(``PlaybackEvent`` s: audio, checkpoint, clear, played, cleared), each with the inbound
track's position at that moment, and places every sample of the played audio on the
inbound sample timeline. Positions are samples of the inbound track; audio is bytes in
the stream's encoding (``bytes_per_sample`` each), so cutting it never decodes it.

How audio is placed:

- The provider plays queued audio in order, without gaps while it has some: audio sent
  when the inbound track was at ``p`` starts at ``max(p, end of the audio before it)``
  (it cannot sound before it was sent). That is the model; the answers correct it.
- An acknowledged checkpoint (``played`` at ``p``) says the audio before it ended in the
  frame before ``p`` (providers answer on their 20 ms clock): when the model's end of
  that audio is not within ``(p - frame, p]``, the run of contiguous audio before the
  checkpoint is moved to end at ``p - frame / 2`` (never before its own send positions,
  never into audio already settled). Everything before it is then *settled*; audio
  queued behind it continues from there.
- A clear takes effect when the provider says so (``cleared`` at ``p``; on providers
  that do not answer a clear, right when it was sent): audio queued before the clear is
  heard up to ``p`` and no further, its unanswered checkpoints never played, and audio
  sent after the clear starts at ``p`` at the earliest.
- Audio the model ended more than ``hold`` samples before the inbound track's position is
  settled where the model puts it (no answer comes for it: a bot without checkpoints, an
  echo), so memory stays bounded. At the end (:meth:`finish`) what is left is settled too.

Settled audio never moves again: :meth:`take` hands it over, in order, as
``(position, bytes)``; nothing can be placed before :attr:`HeardTrack.settled_through`.

Prompts: audio sent while the provider had nothing left to play (by the model) starts a
prompt, and so does the first audio after a clear; audio sent while the provider is
still playing continues the current one. (A bot that streams slower than real time is
heard as several prompts: the caller heard it broken up.) Each :class:`Prompt` has its
*planned* span (where all of its audio would have sounded) and its *heard* span, and is
*interrupted* when a clear cut it short.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HeardTrack", "Prompt"]


@dataclass
class Prompt:
    """One prompt the caller heard (or should have): spans in samples, ``[start, end)``."""

    start: int
    planned_end: int
    heard_end: int
    interrupted: bool = False
    #: (checkpoint name, position its audio ended, played)
    checkpoints: list[tuple[str, int, bool]] = field(default_factory=list)

    def to_json(self, rate: int) -> dict[str, Any]:
        """The sidecar's entry: sample spans and the same in seconds."""
        return {
            "planned": [self.start, self.planned_end],
            "heard": [self.start, self.heard_end],
            "planned_s": [round(self.start / rate, 3), round(self.planned_end / rate, 3)],
            "heard_s": [round(self.start / rate, 3), round(self.heard_end / rate, 3)],
            "interrupted": self.interrupted,
            "checkpoints": [
                {"name": name, "position": pos, "played": played}
                for name, pos, played in self.checkpoints
            ],
        }


@dataclass(slots=True)
class _Audio:
    data: bytes
    n: int  # samples
    sent: int  # inbound position when it was sent: it cannot start before
    start: int  # where the model places it now
    begins: bool  # sent while nothing was left to play: the start of a prompt


@dataclass(slots=True)
class _Mark:
    name: str
    end: int  # where the model says the audio before it ends


@dataclass(slots=True)
class _Clear:
    sent: int


_Item = _Audio | _Mark | _Clear


class HeardTrack:
    """The caller's side of one stream's playback (see the module docstring)."""

    def __init__(self, *, bytes_per_sample: int, frame_samples: int, hold: int) -> None:
        self._bps = bytes_per_sample
        self._frame = frame_samples
        self._hold = hold
        self._queue: deque[_Item] = deque()
        self._head = 0  # where the newest queued audio ends (the model)
        self._settled_end = 0  # nothing settled reaches past this; nothing new starts before
        self._out: list[tuple[int, bytes]] = []
        self.prompts: list[Prompt] = []
        self._new_prompt = True  # the next settled audio starts a prompt (after a clear)

    # -- what happened ----------------------------------------------------------------------

    def feed(self, kind: str, position: int, payload: bytes = b"", name: str = "") -> None:
        """One playback event (kinds as ``streamserver.handler.PlaybackEvent``)."""
        self.advance(position)
        if kind == "audio":
            n = len(payload) // self._bps
            if n:
                begins = position >= self._head
                start = max(self._head, position)
                data = payload if len(payload) == n * self._bps else payload[: n * self._bps]
                self._queue.append(_Audio(data, n, position, start, begins))
                self._head = start + n
        elif kind == "checkpoint":
            self._queue.append(_Mark(name, self._head))
        elif kind == "clear":
            # Audio sent after it waits for the cut, which is no earlier than this.
            self._queue.append(_Clear(position))
            self._head = position
        elif kind == "played":
            self._played(name, position)
        elif kind == "cleared":
            self._cleared(position)

    def advance(self, position: int) -> None:
        """The inbound track is at ``position``: settle the audio that ended (by the
        model) more than ``hold`` samples before it, up to the first checkpoint or clear."""
        queue = self._queue
        limit = position - self._hold
        while queue and type(queue[0]) is _Audio:
            head = queue[0]
            assert isinstance(head, _Audio)
            if head.start + head.n > limit:
                return
            self._settle(1, None)

    def finish(self) -> None:
        """The stream ended: settle everything where the model puts it (a clear the
        provider never answered cuts where it was sent)."""
        while self._queue:
            i = next((i for i, it in enumerate(self._queue) if type(it) is _Clear), None)
            if i is None:
                self._settle(len(self._queue), None)
            else:
                clear = self._queue[i]
                assert isinstance(clear, _Clear)
                self._cleared(clear.sent)

    def take(self) -> list[tuple[int, bytes]]:
        """The audio settled since the last call: ``(position, bytes)``, in order."""
        out, self._out = self._out, []
        return out

    @property
    def settled_through(self) -> int | None:
        """No audio will ever be placed before this position (None: nothing pending,
        anything later may come)."""
        # Send positions only grow along the queue: the first pending audio's is the least.
        low = next((it.sent for it in self._queue if type(it) is _Audio), None)
        if low is None:
            return None
        return max(self._settled_end, low)

    @property
    def settled_end(self) -> int:
        """Where the settled audio ends."""
        return self._settled_end

    # -- answers ----------------------------------------------------------------------------

    def _played(self, name: str, position: int) -> None:
        queue = self._queue
        i = next(
            (
                i
                for i, it in enumerate(queue)
                if type(it) is _Clear or (type(it) is _Mark and it.name == name)
            ),
            None,
        )
        if i is None or type(queue[i]) is _Clear:
            return  # unknown, or past a clear: answered only once the clear is done
        # Move the contiguous run of audio before the checkpoint to end where the
        # provider says it ended; never before it was sent, never into settled audio.
        run = [it for it in list(queue)[:i] if type(it) is _Audio]
        j = len(run)
        while j > 1 and run[j - 2].start + run[j - 2].n == run[j - 1].start:
            j -= 1
        run = run[j - 1 :] if run else []
        end = run[-1].start + run[-1].n if run else position
        if run and not position - self._frame < end <= position:
            shift = position - self._frame // 2 - end
            floor = max(max(a.sent - a.start for a in run), self._settled_end - run[0].start)
            shift = max(shift, floor)
            for a in run:
                a.start += shift
        self._settle(i + 1, position)  # the checkpoint included
        self._replace(self._settled_end)

    def _cleared(self, position: int) -> None:
        queue = self._queue
        i = next((i for i, it in enumerate(queue) if type(it) is _Clear), None)
        if i is None:
            return
        self._settle(i, None, cut=position)
        queue.popleft()  # the clear marker
        self._settled_end = max(self._settled_end, position)
        self._new_prompt = True
        self._replace(self._settled_end)

    # -- internals --------------------------------------------------------------------------

    def _settle(self, count: int, played_at: int | None, cut: int | None = None) -> None:
        """Settle the first ``count`` items: audio placed (cut at ``cut``); checkpoints
        played where the audio before them ended (by ``played_at`` when one was
        answered), or never (before a cut)."""
        queue = self._queue
        for _ in range(count):
            it = queue.popleft()
            if type(it) is _Audio:
                heard = it.n
                if cut is not None:
                    heard = max(0, min(it.n, cut - it.start))
                self._place(it, heard)
            elif type(it) is _Mark:
                end = self._settled_end
                if played_at is not None:
                    end = min(end, played_at)
                self._mark(it.name, end, cut is None)

    def _place(self, it: _Audio, heard: int) -> None:
        start = max(it.start, self._settled_end) if heard else it.start
        prompts = self.prompts
        last = prompts[-1] if prompts else None
        if last is None or self._new_prompt or it.begins:
            last = Prompt(start, start, start)
            prompts.append(last)
            self._new_prompt = False
        last.planned_end = max(last.planned_end, it.start + it.n)
        if heard:
            last.heard_end = start + heard
            self._out.append((start, it.data if heard == it.n else it.data[: heard * self._bps]))
            self._settled_end = max(self._settled_end, start + heard)
        if heard < it.n:
            last.interrupted = True

    def _mark(self, name: str, end: int, played: bool) -> None:
        if not self.prompts:
            self.prompts.append(Prompt(end, end, end))
        self.prompts[-1].checkpoints.append((name, end, played))

    def _replace(self, free: int) -> None:
        """Place the audio still queued (up to the next clear) from ``free`` on."""
        head = free
        for it in self._queue:
            if type(it) is _Clear:
                head = max(head, it.sent)
                continue
            if type(it) is _Audio:
                it.start = max(head, it.sent)
                head = it.start + it.n
            else:
                assert isinstance(it, _Mark)
                it.end = head
        self._head = head
