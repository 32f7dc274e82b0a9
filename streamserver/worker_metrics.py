"""``/metrics`` of a multi-worker host: every worker's series, whichever worker answers.

Each worker writes its rendered metrics to ``{dir}/worker-{n}.prom`` once a second (and at
every scrape it answers); the worker that answers a scrape renders its own series fresh,
reads the other workers' files and merges them into one exposition in which every sample
carries a ``worker="n"`` label and every family's ``# HELP`` / ``# TYPE`` appears once (the
Prometheus text format forbids repeating them). The supervisor's own series
(``supervisor.prom``: restarts) are appended as they are. A dead worker's file is removed
by the supervisor, so its series vanish until it comes back (a counter reset, which
Prometheus handles). The directory lives on ``/dev/shm`` when there is one: no disk I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["SUPERVISOR_FILE", "MetricsBoard", "label_sample", "merge_metrics", "worker_file"]

SUPERVISOR_FILE = "supervisor.prom"


def worker_file(directory: str | os.PathLike[str], worker: int) -> Path:
    """Where worker ``worker`` writes its series."""
    return Path(directory) / f"worker-{worker}.prom"


def label_sample(line: str, worker: str) -> str:
    """``name{a="b"} 1`` -> ``name{worker="w",a="b"} 1`` (and ``name 1`` likewise)."""
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        head, rest = line[:brace], line[brace + 1 :]
        sep = "" if rest.startswith("}") else ","
        return f'{head}{{worker="{worker}"{sep}{rest}'
    if space == -1:
        return line
    return f'{line[:space]}{{worker="{worker}"}}{line[space:]}'


def merge_metrics(texts: Mapping[str, str]) -> str:
    """One exposition from several workers' (``worker -> text``): families in the order
    first seen, each with its comments once and then every worker's samples, labelled."""
    order: list[str] = []
    owner: dict[str, str] = {}  # family -> the worker whose comments describe it
    comments: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}

    def family_of(name: str, worker: str) -> str:
        if name not in owner:
            owner[name] = worker
            order.append(name)
            comments[name] = []
            samples[name] = []
        return name

    for worker in sorted(texts, key=lambda w: (len(w), w)):
        family = ""
        for line in texts[worker].splitlines():
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = family_of(parts[2], worker)
                    if owner[family] == worker:
                        comments[family].append(line)
                continue
            if not family:
                family = family_of(line.split("{", 1)[0].split(" ", 1)[0], worker)
            samples[family].append(label_sample(line, worker))
    out: list[str] = []
    for family in order:
        out.extend(comments[family])
        out.extend(samples[family])
    return "\n".join(out) + "\n"


class MetricsBoard:
    """One worker's side of the shared metrics directory.

    ``render(draining)`` is what the worker's ``/metrics`` answers (install it as the
    gate's ``render_metrics``); :meth:`start` writes this worker's file once a second.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        worker: int,
        render_own: Callable[[bool], str],
        *,
        interval_s: float = 1.0,
    ) -> None:
        self.directory = Path(directory)
        self.worker = worker
        self.render_own = render_own
        self.interval_s = interval_s
        self.path = worker_file(directory, worker)
        self._task: asyncio.Task[None] | None = None
        self._draining = False

    def write(self, text: str) -> None:
        """Replace this worker's file atomically (a reader never sees half of it)."""
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)

    def render(self, draining: bool) -> str:
        """Every worker's series (this one's fresh), then the supervisor's."""
        self._draining = draining
        own = self.render_own(draining)
        self.write(own)
        texts = {str(self.worker): own}
        extra = ""
        with contextlib.suppress(OSError):
            for path in self.directory.iterdir():
                name = path.name
                try:
                    if name == SUPERVISOR_FILE:
                        extra = path.read_text(encoding="utf-8")
                    elif name.startswith("worker-") and name.endswith(".prom"):
                        worker = name[len("worker-") : -len(".prom")]
                        if worker != str(self.worker):
                            texts[worker] = path.read_text(encoding="utf-8")
                except OSError:  # removed (its worker died) while we listed
                    continue
        return merge_metrics(texts) + extra

    def start(self) -> None:
        """Write this worker's file now and then every ``interval_s``."""
        self.write(self.render_own(False))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics-board")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.write(self.render_own(self._draining))

    def set_draining(self) -> None:
        """The host drains: later writes say so."""
        self._draining = True
        self.write(self.render_own(True))

    async def aclose(self) -> None:
        """Stop writing (the file stays: the supervisor removes it when the worker exits)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
