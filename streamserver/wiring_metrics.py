"""The bus's and the uploader's counters as Prometheus families (``/metrics``).

The service adds :func:`bus_source` and :func:`storage_source` to the server's
``Metrics.sources`` when ``[bus]`` / ``[storage]`` are configured; every scrape reads the
counters the publisher, the command server and the uploader keep (plain integers, no
per-event cost beyond them). With several workers each worker renders its own and
:mod:`streamserver.worker_metrics` labels them ``worker="n"`` like every other family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bus import Bus
    from .storage import RecordingUploader

__all__ = ["bus_source", "render_families", "storage_source"]

#: (name without the ``streamserver_`` prefix, type, help, samples as (labels, value))
Family = tuple[str, str, str, Iterable[tuple[str, float]]]


def render_families(families: Iterable[Family]) -> str:
    """Prometheus text of ``families``; labels are written as given (``a="b"``)."""
    out: list[str] = []
    for name, kind, help_, samples in families:
        out.append(f"# HELP streamserver_{name} {help_}")
        out.append(f"# TYPE streamserver_{name} {kind}")
        for labels, value in samples:
            label_text = f"{{{labels}}}" if labels else ""
            text = str(value) if isinstance(value, int) else repr(float(value))
            out.append(f"streamserver_{name}{label_text} {text}")
    return "\n".join(out) + "\n"


def bus_source(bus: Bus) -> Callable[[], str]:
    """The families of ``bus``: connection, events published / failed / dropped / waiting,
    reconnects, commands answered."""

    def render() -> str:
        ev = bus.events.stats()
        conn = bus.connection
        cmd = bus.commands
        return render_families(
            [
                ("bus_connected", "gauge", "1 while connected to NATS.",
                 [("", 1 if conn.connected else 0)]),
                ("bus_reconnects_total", "counter",
                 "Times the NATS connection came back after a loss.",
                 [("", max(0, conn.connects - 1))]),
                ("bus_events_published_total", "counter",
                 "Events JetStream acknowledged.", [("", ev["published"])]),
                ("bus_events_failed_total", "counter",
                 "Events JetStream refused for good (too large, ...).", [("", ev["failed"])]),
                ("bus_events_dropped_total", "counter",
                 "Events dropped: the backlog was full ([bus] backlog) or still held at "
                 "shutdown.", [("", ev["dropped"])]),
                ("bus_events_backlog", "gauge",
                 "Events queued, waiting for JetStream's ack (NATS slow or down).",
                 [("", ev["backlog"])]),
                ("bus_commands_total", "counter", "Bus commands answered, by result.",
                 [('result="ok"', cmd.handled), ('result="refused"', cmd.refused)]),
            ]
        )  # fmt: skip

    return render


def storage_source(uploader: RecordingUploader) -> Callable[[], str]:
    """The families of ``uploader``: recordings uploaded / failed, retries, bytes, the
    queue."""

    def render() -> str:
        st = uploader.stats()
        return render_families(
            [
                ("uploads_total", "counter",
                 "Recordings uploaded and verified (ok), or given up after every retry "
                 "(failed: kept in the spool for the next re-scan).",
                 [('result="ok"', st["uploaded"]), ('result="failed"', st["failed"])]),
                ("upload_retries_total", "counter", "Upload attempts retried after an error.",
                 [("", st["retried"])]),
                ("upload_bytes_total", "counter", "Bytes of audio and sidecars uploaded.",
                 [("", st["bytes"])]),
                ("upload_rejected_total", "counter",
                 "Recordings not queued because the queue was full ([storage] queue_size; "
                 "the next re-scan takes them).", [("", st["rejected"])]),
                ("upload_queue", "gauge", "Recordings queued or uploading now.",
                 [("", st["pending"])]),
            ]
        )  # fmt: skip

    return render
