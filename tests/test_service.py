"""StreamService: the stream server and its control app, started and drained together."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from streamserver.handler import Handler, HandlerSpec
from streamserver.service import ListenError, StreamService
from streamserver.settings import Settings


@contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


class Extra(Handler):
    pass


def _settings(make_settings: Callable[..., Settings], **control: Any) -> Settings:
    s = make_settings(routes={"/stream": {"handlers": ["recorder"]}})
    s.extra["control"] = {"enabled": True, "port": 0, **control}
    return s


async def test_service_runs_server_and_control_app(make_settings: Callable[..., Settings]) -> None:
    extra = {"/stream": [HandlerSpec("extra", Extra)]}
    async with StreamService(_settings(make_settings), extra_handlers=extra) as service:
        assert service.url.startswith("ws://127.0.0.1:") and service.server.port
        handlers = [h.name for h in service.server.routes["/stream"].handlers]
        assert handlers == ["recorder", "extra"]
        assert service.control is not None
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport()) as client:
            r = await client.get(f"{service.control.base_url}/healthz")
        assert r.status_code == 200
        assert service.control.stream_url == f"{service.url}/stream"


async def test_service_without_control_app(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    async with StreamService(settings) as service:
        assert service.control is None and service.server.port


async def test_listen_errors_name_the_part(make_settings: Callable[..., Settings]) -> None:
    with taken_port() as port:
        settings = _settings(make_settings)
        settings.server.port = port
        service = StreamService(settings)
        with pytest.raises(ListenError) as exc:
            await service.start()
        assert (exc.value.part, exc.value.port) == ("server", port)

        service = StreamService(_settings(make_settings, port=port))
        with pytest.raises(ListenError) as exc:
            await service.start()
        assert (exc.value.part, exc.value.port) == ("control app", port)
        assert service.server.draining  # the server was stopped again
