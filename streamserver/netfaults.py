"""Bad networks on purpose: what goes wrong between a provider and the stream server, and
when (pure: no I/O, no asyncio, nothing of ours).

A :class:`NetFaults` says what should go wrong on one stream; :func:`plan_frames` turns it
into a :class:`FramePlan`, the exact schedule of media sends: which frame goes out when,
which never does, which twice. The provider-side tools apply it: the emulator's stream
client (``streamserver replay``, the call emulator's ``<Stream>``) for every fault, the
load tester for the frame faults (drop, duplicate, reorder, jitter, bursts, drift).

Frame faults, decided per frame ``k`` (the ``k``-th 20 ms tick of the caller's audio,
carrying chunk ``k + 1`` of each track):

- **drop** ``drop_pct`` % of the frames are never sent;
- **duplicate** ``duplicate_pct`` % are sent twice, the copy right after the original;
- **reorder** ``reorder_pct`` % go out late, right after the frame up to ``reorder_window``
  ticks after them (a server holding ``reorder_window`` frames puts them back in order);
- **jitter** every send is delayed by a uniform 0..``jitter_ms``; order is kept (one TCP
  connection never reorders), so a late frame holds the ones behind it;
- **bursts** from ``burst_every_s`` on, every ``burst_every_s`` seconds the frames due in
  the next ``burst_hold_ms`` are held and then sent at once;
- **drift** the sender's clock runs ``drift_ppm`` parts per million fast (negative: slow):
  frame ``k`` is due at ``k * frame_s / (1 + drift_ppm / 1e6)``.

Connection faults, at a time (seconds from the stream's start):

- **vanish** at ``vanish_at_s`` the socket vanishes without a FIN: ``vanish = "abort"``
  resets the connection (RST), ``"silent"`` stops reading and sending and leaves it open,
  as a cut network path does (only the server's timeouts can tell);
- **reconnect** ``reconnect_after_s`` after a vanish a new socket resumes the stream with
  the same ids, the caller's timeline having gone on (frames due meanwhile are lost);
- **second socket** at ``second_socket_at_s`` a second socket opens for the same stream
  and carries the same frames from then on (the first one keeps going too);
- **slow reader** from ``slow_read_at_s`` for ``slow_read_s`` seconds (0: to the end) the
  provider reads what the server sends at ``slow_read_bytes_per_s`` (0: not at all), so the
  server's output queue for it grows.

Every random choice comes from ``seed`` (one independent generator per fault, so turning
one fault on never changes the frames another one picks): the same seed gives the same
plan. With ``seed = None`` the tools draw a seed and report it, so a run can be repeated.
"""

from __future__ import annotations

import math
import random
import secrets
from array import array
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = [
    "VANISH_MODES",
    "FramePlan",
    "NetFaults",
    "carriers",
    "plan_frames",
]

#: How a socket vanishes: a reset, or a path that goes quiet.
VANISH_MODES = ("abort", "silent")

# The short names of the text form (``drop=5,reorder=2:3``), each with the fields it sets.
_KEYS: dict[str, tuple[str, ...]] = {
    "drop": ("drop_pct",),
    "dup": ("duplicate_pct",),
    "duplicate": ("duplicate_pct",),
    "reorder": ("reorder_pct", "reorder_window"),
    "jitter": ("jitter_ms",),
    "burst": ("burst_every_s", "burst_hold_ms"),
    "drift": ("drift_ppm",),
    "vanish": ("vanish_at_s", "vanish"),
    "reconnect": ("reconnect_after_s",),
    "second": ("second_socket_at_s",),
    "second-socket": ("second_socket_at_s",),
    "slow-read": ("slow_read_at_s", "slow_read_s", "slow_read_bytes_per_s"),
    "seed": ("seed",),
}


@dataclass(frozen=True, slots=True)
class NetFaults:
    """What goes wrong on one stream (see the module docstring). The defaults are a
    perfect network; :meth:`parse` reads the text form the command line and the call
    emulator's knobs use."""

    # Frame faults
    drop_pct: float = 0.0
    duplicate_pct: float = 0.0
    reorder_pct: float = 0.0
    reorder_window: int = 3
    jitter_ms: float = 0.0
    burst_every_s: float = 0.0
    burst_hold_ms: float = 0.0
    drift_ppm: float = 0.0
    # Connection faults
    vanish_at_s: float | None = None
    vanish: str = "abort"
    reconnect_after_s: float | None = None
    second_socket_at_s: float | None = None
    slow_read_at_s: float | None = None
    slow_read_s: float = 0.0
    slow_read_bytes_per_s: float = 0.0
    # The random choices
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("drop_pct", "duplicate_pct", "reorder_pct"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 100):
                raise ValueError(f"{name} must be a percentage 0..100, got {value!r}")
        if self.reorder_window < 1:
            raise ValueError(f"reorder_window must be >= 1 frame, got {self.reorder_window!r}")
        for name in ("jitter_ms", "burst_every_s", "burst_hold_ms", "slow_read_s",
                     "slow_read_bytes_per_s"):  # fmt: skip
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if bool(self.burst_every_s) != bool(self.burst_hold_ms):
            raise ValueError("bursts need both burst_every_s and burst_hold_ms")
        if self.burst_hold_ms and self.burst_hold_ms >= self.burst_every_s * 1000:
            raise ValueError("burst_hold_ms must be shorter than burst_every_s")
        if not (math.isfinite(self.drift_ppm) and abs(self.drift_ppm) < 100_000):
            raise ValueError(f"drift_ppm must be within ±100000, got {self.drift_ppm!r}")
        for name in ("vanish_at_s", "reconnect_after_s", "second_socket_at_s", "slow_read_at_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.vanish not in VANISH_MODES:
            raise ValueError(f"vanish must be abort or silent, got {self.vanish!r}")
        if self.reconnect_after_s is not None and self.vanish_at_s is None:
            raise ValueError("reconnect_after_s needs vanish_at_s (a socket to replace)")
        if self.reconnect_after_s is not None and self.second_socket_at_s is not None:
            raise ValueError("use reconnect_after_s or second_socket_at_s, not both")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer 0..2**63-1, got {self.seed!r}")

    # -- what is asked --------------------------------------------------------------------

    @property
    def frame_faults(self) -> bool:
        """Does anything happen to individual frames?"""
        return bool(
            self.drop_pct or self.duplicate_pct or self.reorder_pct or self.jitter_ms
            or self.burst_every_s or self.drift_ppm
        )  # fmt: skip

    @property
    def connection_faults(self) -> bool:
        """Does anything happen to the connection?"""
        return (
            self.vanish_at_s is not None
            or self.second_socket_at_s is not None
            or self.slow_read_at_s is not None
        )

    def __bool__(self) -> bool:
        return self.frame_faults or self.connection_faults

    def seeded(self) -> NetFaults:
        """These faults with a seed: its own, or a freshly drawn one (to report)."""
        if self.seed is not None:
            return self
        return replace(self, seed=secrets.randbelow(2**31))

    def slow_reading(self, t: float) -> bool:
        """Is the provider reading slowly at ``t`` seconds?"""
        at = self.slow_read_at_s
        if at is None or t < at:
            return False
        return not self.slow_read_s or t < at + self.slow_read_s

    # -- the text form --------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> NetFaults:
        """``"drop=5,dup=1,reorder=10:3,jitter=40,burst=2:300,drift=200,vanish=3:silent,
        reconnect=1,second=4,slow-read=1:5:2000,seed=7"`` (percentages may end in ``%``,
        times in ``s``/``ms`` where the unit is already seconds/milliseconds). Empty text:
        no faults. ``ValueError`` names the bad part."""
        values: dict[str, Any] = {}
        kinds = {f.name: f.type for f in fields(cls)}
        for part in text.replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in _KEYS:
                known = ", ".join(k for k in _KEYS if k not in ("duplicate", "second-socket"))
                raise ValueError(f"bad fault {part!r}; expected key=value with keys: {known}")
            items = [v.strip() for v in raw.split(":")]
            names = _KEYS[key]
            if not 1 <= len(items) <= len(names) or not all(items):
                raise ValueError(f"bad fault {part!r}: {key} takes {':'.join(names)}")
            for name, item in zip(names, items, strict=False):
                values[name] = _value(name, str(kinds[name]), item, part)
        return cls(**values)

    def describe(self) -> str:
        """The text form of these faults (what :meth:`parse` reads back)."""
        out: list[str] = []
        if self.drop_pct:
            out.append(f"drop={self.drop_pct:g}")
        if self.duplicate_pct:
            out.append(f"dup={self.duplicate_pct:g}")
        if self.reorder_pct:
            out.append(f"reorder={self.reorder_pct:g}:{self.reorder_window}")
        if self.jitter_ms:
            out.append(f"jitter={self.jitter_ms:g}")
        if self.burst_every_s:
            out.append(f"burst={self.burst_every_s:g}:{self.burst_hold_ms:g}")
        if self.drift_ppm:
            out.append(f"drift={self.drift_ppm:g}")
        if self.vanish_at_s is not None:
            out.append(f"vanish={self.vanish_at_s:g}:{self.vanish}")
        if self.reconnect_after_s is not None:
            out.append(f"reconnect={self.reconnect_after_s:g}")
        if self.second_socket_at_s is not None:
            out.append(f"second={self.second_socket_at_s:g}")
        if self.slow_read_at_s is not None:
            rate = self.slow_read_bytes_per_s
            out.append(f"slow-read={self.slow_read_at_s:g}:{self.slow_read_s:g}:{rate:g}")
        if self.seed is not None:
            out.append(f"seed={self.seed}")
        return ",".join(out)


def _value(name: str, kind: str, text: str, part: str) -> Any:
    if name == "vanish":
        if text.lower() not in VANISH_MODES:
            raise ValueError(f"bad fault {part!r}: the vanish mode is abort or silent")
        return text.lower()
    unit = "ms" if name.endswith("_ms") else "s" if name.endswith("_s") else ""
    stripped = text.lower().removesuffix("%")
    if unit:
        stripped = stripped.removesuffix(unit)
    try:
        if "int" in kind:
            return int(stripped)
        number = float(stripped)
    except ValueError:
        raise ValueError(f"bad fault {part!r}: {text!r} is not a number") from None
    return number


@dataclass(frozen=True, slots=True)
class FramePlan:
    """The media sends of one stream, in wire order: send ``i`` carries frame
    ``frames[i]`` at ``at_s[i]`` seconds from the stream's start (nondecreasing);
    ``copies[i]`` is 1 for a duplicate. The counts say what the faults did."""

    at_s: array[float]
    frames: array[int]
    copies: array[int]
    seed: int
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    held: int = 0  # sends held back by a burst
    lost: list[int] = field(default_factory=list)  # the dropped frames, in order

    def __len__(self) -> int:
        return len(self.frames)

    def counts(self) -> dict[str, int]:
        """What the faults did, for a report."""
        return {
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "held": self.held,
        }


def _rng(seed: int, what: str) -> random.Random:
    # One generator per fault: turning one fault on never moves the choices of another.
    return random.Random(f"{seed}/{what}")


def plan_frames(faults: NetFaults, n_frames: int, frame_s: float) -> FramePlan:
    """The schedule of ``n_frames`` media frames of ``frame_s`` seconds under ``faults``
    (seeded: :meth:`NetFaults.seeded` first, or the plan uses seed 0)."""
    if n_frames < 0 or not frame_s > 0:
        raise ValueError("n_frames must be >= 0 and frame_s > 0")
    seed = faults.seed if faults.seed is not None else 0
    step = frame_s / (1.0 + faults.drift_ppm * 1e-6)
    drop, dup = faults.drop_pct / 100.0, faults.duplicate_pct / 100.0
    reorder = faults.reorder_pct / 100.0
    r_drop, r_dup, r_reorder = _rng(seed, "drop"), _rng(seed, "dup"), _rng(seed, "reorder")
    r_jitter = _rng(seed, "jitter")
    # (slot, after, frame, copy): a frame goes out at the due time of tick `slot`; `after`
    # puts a late frame behind the one whose slot it takes.
    entries: list[tuple[int, int, int, int]] = []
    lost: list[int] = []
    dropped = duplicated = reordered = 0
    for k in range(n_frames):
        # Every generator is drawn once per frame whatever happens, so the choices of
        # frame k never depend on what happened to the frames before it.
        d_drop, d_dup, d_re = r_drop.random(), r_dup.random(), r_reorder.random()
        d_by = r_reorder.randint(1, faults.reorder_window)
        if d_drop < drop:
            dropped += 1
            lost.append(k)
            continue
        slot, after = k, 0
        if d_re < reorder and k + 1 < n_frames:
            slot, after = min(k + d_by, n_frames - 1), 1
            reordered += 1
        entries.append((slot, after, k, 0))
        if d_dup < dup:
            duplicated += 1
            entries.append((slot, after, k, 1))
    entries.sort(key=lambda e: (e[0], e[1]))  # stable: a copy stays behind its original
    at = array("d")
    frames = array("i")
    copies = array("b")
    jitter = faults.jitter_ms / 1000.0
    every, hold = faults.burst_every_s, faults.burst_hold_ms / 1000.0
    held = 0
    last = 0.0
    for slot, _, k, copy in entries:
        t = slot * step
        if jitter:
            t += r_jitter.uniform(0.0, jitter)
        if every:
            w = math.floor(t / every)
            start = w * every
            if w >= 1 and start <= t < start + hold:
                t = start + hold
                held += 1
        t = max(t, last)  # one connection keeps its order: a late send holds those behind
        last = t
        at.append(t)
        frames.append(k)
        copies.append(copy)
    return FramePlan(at, frames, copies, seed, dropped, duplicated, reordered, held, lost)


def carriers(faults: NetFaults, t: float) -> tuple[int, ...]:
    """Which sockets carry a send at ``t`` seconds. Socket 0 is the first; a vanish ends it.
    Socket 1 is the second socket (from ``second_socket_at_s``) or the one that resumes
    the stream ``reconnect_after_s`` after the vanish. ``()``: none (the stream vanished
    and is not back yet, or never will be)."""
    out: list[int] = []
    vanish = faults.vanish_at_s
    if vanish is None or t < vanish:
        out.append(0)
    second = faults.second_socket_at_s
    back = faults.reconnect_after_s
    if (second is not None and t >= second) or (
        back is not None and vanish is not None and t >= vanish + back
    ):
        out.append(1)
    return tuple(out)
