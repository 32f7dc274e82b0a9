"""The bus's and the uploader's families in /metrics, and how workers' copies merge (pure)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streamserver.metrics import Metrics
from streamserver.wiring_metrics import bus_source, render_families, storage_source
from streamserver.worker_metrics import merge_metrics


def fake_bus(published: int, backlog: int, connects: int, connected: bool) -> Any:
    events = SimpleNamespace(
        stats=lambda: {"published": published, "dropped": 3, "failed": 1, "backlog": backlog}
    )
    conn = SimpleNamespace(connected=connected, connects=connects)
    return SimpleNamespace(
        events=events, connection=conn, commands=SimpleNamespace(handled=7, refused=2)
    )


def fake_uploader(uploaded: int) -> Any:
    stats = {"uploaded": uploaded, "failed": 1, "rejected": 0, "retried": 4,
             "bytes": 12_345_678_901, "pending": 2}  # fmt: skip
    return SimpleNamespace(stats=lambda: stats)


def test_render_families_writes_help_type_and_exact_integers() -> None:
    text = render_families([("x_total", "counter", "X.", [("", 12_345_678_901), ('a="b"', 2)])])
    assert text.splitlines() == [
        "# HELP streamserver_x_total X.",
        "# TYPE streamserver_x_total counter",
        "streamserver_x_total 12345678901",
        'streamserver_x_total{a="b"} 2',
    ]


def test_sources_render_with_the_server_metrics() -> None:
    m = Metrics()
    m.sources.append(bus_source(fake_bus(10, 5, connects=3, connected=True)))
    m.sources.append(storage_source(fake_uploader(9)))
    text = m.render()
    lines = set(text.splitlines())
    assert "streamserver_bus_connected 1" in lines
    assert "streamserver_bus_reconnects_total 2" in lines  # the first connect is not one
    assert "streamserver_bus_events_published_total 10" in lines
    assert "streamserver_bus_events_backlog 5" in lines
    assert "streamserver_bus_events_dropped_total 3" in lines
    assert 'streamserver_bus_commands_total{result="refused"} 2' in lines
    assert 'streamserver_uploads_total{result="ok"} 9' in lines
    assert "streamserver_upload_bytes_total 12345678901" in lines
    assert "streamserver_upload_queue 2" in lines
    assert text.count("# TYPE streamserver_uploads_total ") == 1


def test_two_workers_merge_into_one_family_each_labelled() -> None:
    texts = {}
    for worker, published in (("0", 10), ("1", 32)):
        m = Metrics()
        m.sources.append(bus_source(fake_bus(published, 0, 1, connected=worker == "0")))
        m.sources.append(storage_source(fake_uploader(published)))
        texts[worker] = m.render()
    merged = merge_metrics(texts)
    lines = merged.splitlines()
    assert lines.count("# TYPE streamserver_bus_events_published_total counter") == 1
    assert 'streamserver_bus_events_published_total{worker="0"} 10' in lines
    assert 'streamserver_bus_events_published_total{worker="1"} 32' in lines
    assert 'streamserver_bus_connected{worker="1"} 0' in lines
    assert 'streamserver_uploads_total{worker="1",result="ok"} 32' in lines
    # Every family's samples follow its own TYPE line (the text format's rule).
    family = ""
    for line in lines:
        if line.startswith("# TYPE "):
            family = line.split()[2]
        elif not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            assert name == family, line
