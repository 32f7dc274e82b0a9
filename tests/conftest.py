from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from streamserver.net import StreamServer
from streamserver.settings import Settings, load_settings

ServeFn = Callable[..., Any]


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    """Run every async test on uvloop, as production does."""
    import uvloop

    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def record_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rec"
    d.mkdir()
    return d


@pytest.fixture
def make_settings(record_dir: Path) -> Callable[..., Settings]:
    """Settings for a server on 127.0.0.1:0 recording into a temp dir."""

    def make(
        routes: dict[str, dict[str, Any]] | None = None,
        handler: dict[str, dict[str, Any]] | None = None,
        **server: Any,
    ) -> Settings:
        env: dict[str, str] = {}
        s = load_settings(
            None,
            environ=env,
            overrides={"server.host": "127.0.0.1", "server.port": 0, "server.gc_freeze": False},
        )
        s.server.nonce_dir = str(record_dir.parent / "nonces")  # never the working directory
        for k, v in server.items():
            setattr(s.server, k, v)
        if routes is not None:
            from streamserver.settings import RouteSettings

            s.routes = {p: RouteSettings(**r) for p, r in routes.items()}
        s.handler = {"recorder": {"record_dir": str(record_dir)}}
        for name, opts in (handler or {}).items():
            s.handler.setdefault(name, {}).update(opts)
        return s

    return make


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """``async with serve(...) as server:`` a real StreamServer on a free port."""

    @asynccontextmanager
    async def run(**kw: Any) -> AsyncIterator[StreamServer]:
        settings = kw.pop("settings", None) or make_settings(**kw)
        server = StreamServer(settings)
        await server.start()
        try:
            yield server
        finally:
            await server.shutdown()

    return run
