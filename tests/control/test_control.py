"""The control app: answer XML, signed callbacks, delivery to live streams, /streams."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import httpx
import numpy as np
import pytest

from streamserver.control import (
    CALLBACK_TOPIC,
    Callback,
    ControlApp,
    ControlSettings,
    load_control_settings,
)
from streamserver.emulator import PlivoStreamClient, StreamClientOptions
from streamserver.handler import BusEvent, Handler, HandlerSpec, StreamContext
from streamserver.net import StreamServer
from streamserver.session import Route
from streamserver.settings import ConfigError, Settings, load_settings
from streamserver.signature import HEADER_MA_V3, HEADER_NONCE_V3, HEADER_V3, sign_headers

TIMEOUT = 10.0
TOKEN = "ControlTestToken0123456789"
OTHER_TOKEN = "RotatedControlToken987654321"
CALL = "5f0d3c2e-1111-4a4a-8b8b-000000000001"


class Probe(Handler):
    """Reports start and every callback event through the dict given as options."""

    def __init__(self, ctx: StreamContext, options: Any = None) -> None:
        super().__init__(ctx, options)
        self.sink: dict[str, Any] = options

    async def on_start(self) -> None:
        self.sink["started"].set_result(self.ctx)

    async def on_event(self, event: Any) -> None:
        if isinstance(event, BusEvent) and event.topic == CALLBACK_TOPIC:
            self.sink["events"].put_nowait(event)


@asynccontextmanager
async def control_app(
    make_settings: Callable[..., Settings],
    *,
    token: str | None = TOKEN,
    extra_tokens: list[str] | None = None,
    control: dict[str, Any] | None = None,
    probe: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[StreamServer, ControlApp]]:
    settings = make_settings(routes={"/stream": {"handlers": ["recorder"], "bidirectional": True}})
    settings.plivo.auth_token = token or ""
    settings.plivo.extra_auth_tokens = list(extra_tokens or [])
    settings.extra["control"] = {"enabled": True, "port": 0, **(control or {})}
    server = StreamServer(settings)
    if probe is not None:
        server.routes["/stream"] = Route("/stream", (HandlerSpec("probe", Probe, probe),), True)
    app = ControlApp(server, load_control_settings(settings))
    await server.start()
    await app.start()
    try:
        yield server, app
    finally:
        await app.aclose()
        await server.shutdown()


def signed(
    url: str, params: dict[str, str] | None = None, method: str = "POST", token: str = TOKEN
) -> dict[str, str]:
    return sign_headers(url, token, params or None, method=method)


async def post(
    http: httpx.AsyncClient,
    url: str,
    params: dict[str, str],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await http.post(url, data=params, headers=headers or signed(url, params))


def stream_of(xml_text: str) -> ElementTree.Element:
    root = ElementTree.fromstring(xml_text)
    assert root.tag == "Response"
    (stream,) = list(root)
    assert stream.tag == "Stream"
    return stream


# -- answer XML ------------------------------------------------------------------------------


async def test_answer_xml_streams_to_the_route_with_the_configured_options(
    make_settings: Callable[..., Settings],
) -> None:
    options = {"extra_headers": {"tenant": "acme", "tier": "2"}, "stream_timeout_s": 600}
    async with control_app(make_settings, control=options) as (server, app):
        async with httpx.AsyncClient() as http:
            # Plivo fetches the answer URL with POST and the call's form fields, signed.
            params = {"CallUUID": CALL, "From": "14155550100", "To": "14155550101"}
            r = await post(http, app.answer_url, params)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("application/xml")
            assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
            stream = stream_of(r.text)
            assert stream.text == f"{server.url}/stream"
            assert stream.attrib == {
                "bidirectional": "true",
                "audioTrack": "inbound",
                "streamTimeout": "600",
                "statusCallbackUrl": f"{app.public_url}/callbacks/stream",
                "statusCallbackMethod": "POST",
                "contentType": "audio/x-mulaw;rate=8000",
                "extraHeaders": "tenant=acme,tier=2",
                "keepCallAlive": "true",
            }
            # GET works too (signed over the URL with its query).
            url = f"{app.answer_url}?CallUUID={CALL}"
            r = await http.get(url, headers=signed(url, method="GET"))
            assert r.status_code == 200 and stream_of(r.text).text == f"{server.url}/stream"
            # Another WebSocket URL can be asked for in the (signed) query.
            target = "wss://media.example.com/bot?x=1"
            url = f"{app.answer_url}?stream_url={quote(target, safe='')}"
            r = await post(http, url, params)
            assert r.status_code == 200 and stream_of(r.text).text == target
            url = f"{app.answer_url}?stream_url={quote('https://not-a-websocket', safe='')}"
            r = await post(http, url, params)
            assert r.status_code == 400 and "stream_url" in r.text
        assert server.metrics.callbacks["answer"] == 3


async def test_answer_xml_follows_public_urls(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(routes={"/bot": {"handlers": ["echo"], "bidirectional": True}})
    settings.server.public_url = "https://media.example.com/prefix/"
    settings.extra["control"] = {
        "enabled": True,
        "route": "/bot",
        "public_url": "https://ctl.example.com/plivo",
        "content_type": "audio/x-l16;rate=16000",
        "keep_call_alive": False,
        "status_callback": False,
    }
    app = ControlApp(StreamServer(settings), load_control_settings(settings))
    assert app.answer_url == "https://ctl.example.com/plivo/answer"
    assert app.callback_url("hangup") == "https://ctl.example.com/plivo/callbacks/hangup"
    stream = stream_of(app.answer_xml())
    assert stream.text == "wss://media.example.com/prefix/bot"
    assert stream.attrib["contentType"] == "audio/x-l16;rate=16000"
    assert stream.attrib["keepCallAlive"] == "false"
    assert "statusCallbackUrl" not in stream.attrib


# -- signatures ------------------------------------------------------------------------------


async def test_callback_signatures_valid_invalid_missing_replayed(
    make_settings: Callable[..., Settings],
) -> None:
    async with control_app(make_settings, extra_tokens=[OTHER_TOKEN]) as (server, app):
        url = app.callback_url("hangup")
        params = {"CallUUID": CALL, "Event": "Hangup", "HangupCause": "NORMAL_CLEARING"}
        async with httpx.AsyncClient() as http:
            ok = await post(http, url, params)
            assert ok.status_code == 200, ok.text
            assert ok.json() == {"ok": True, "delivered": 0}

            # A field changed after signing.
            headers = signed(url, params)
            r = await post(http, url, {**params, "HangupCause": "forged"}, headers)
            assert r.status_code == 403 and "signature mismatch" in r.text
            # Signed with some other token.
            r = await post(http, url, params, signed(url, params, token="SomebodyElse123"))
            assert r.status_code == 403
            # Signed for another URL (the path is covered).
            other = app.callback_url("stream")
            r = await post(http, url, params, signed(other, params))
            assert r.status_code == 403
            # Missing signature, missing nonce.
            r = await http.post(url, data=params)
            assert r.status_code == 403 and HEADER_V3 in r.text
            headers = signed(url, params)
            del headers[HEADER_NONCE_V3]
            r = await post(http, url, params, headers)
            assert r.status_code == 403 and HEADER_NONCE_V3 in r.text
            # The same signed request twice: the second is a replay.
            headers = signed(url, params)
            assert (await post(http, url, params, headers)).status_code == 200
            r = await post(http, url, params, headers)
            assert r.status_code == 403 and "replayed" in r.text

            # The main account's signature alone, and a rotated (extra) token, both pass.
            headers = signed(url, params)
            del headers[HEADER_V3]
            assert HEADER_MA_V3 in headers
            assert (await post(http, url, params, headers)).status_code == 200
            r = await post(http, url, params, signed(url, params, token=OTHER_TOKEN))
            assert r.status_code == 200
            # The answer URL is checked the same way.
            r = await http.post(app.answer_url, data={"CallUUID": CALL})
            assert r.status_code == 403
        assert server.metrics.callbacks["hangup"] == 4
        assert server.metrics.callbacks["rejected"] == 7
        metrics = server.metrics.render()
        assert 'streamserver_callbacks_total{kind="hangup"} 4' in metrics


async def test_a_callback_replayed_after_a_restart_is_refused(
    make_settings: Callable[..., Settings],
) -> None:
    # Issue 16: the control app shares the server's replay cache, kept in nonce_dir.
    public = {"public_url": "https://control.example.com"}  # the URL Plivo signs, any port
    params = {"CallUUID": CALL, "Event": "Hangup", "HangupCause": "NORMAL_CLEARING"}
    headers = signed("https://control.example.com/callbacks/hangup", params)
    for attempt in ("first", "after a restart"):
        async with control_app(make_settings, control=public) as (server, app):
            assert server.settings.server.nonce_dir  # what make_settings gives every test
            local = f"{app.base_url}/callbacks/hangup"
            async with httpx.AsyncClient() as http:
                r = await post(http, local, params, headers)
            if attempt == "first":
                assert r.status_code == 200, r.text
            else:
                assert r.status_code == 403 and "replayed nonce" in r.text
    nonces = Path(server.settings.server.nonce_dir) / "nonces.log"
    assert nonces.exists() and len(nonces.read_text().splitlines()) == 1


async def test_without_a_token_callbacks_are_not_checked(
    make_settings: Callable[..., Settings],
) -> None:
    async with control_app(make_settings, token=None) as (server, app):
        async with httpx.AsyncClient() as http:
            r = await http.post(app.callback_url("stream"), data={"CallUUID": CALL})
            assert r.status_code == 200
            r = await http.post(app.answer_url)
            assert r.status_code == 200 and stream_of(r.text).tag == "Stream"
        assert server.metrics.callbacks == {"stream": 1, "answer": 1}


async def test_bad_requests_get_clear_4xx(make_settings: Callable[..., Settings]) -> None:
    async with control_app(make_settings, token=None) as (_, app):
        async with httpx.AsyncClient() as http:
            base = app.base_url
            r = await http.post(f"{base}/callbacks/hangup", json={"CallUUID": CALL})
            assert r.status_code == 415 and "x-www-form-urlencoded" in r.text
            r = await http.post(f"{base}/callbacks/hangup", data={"Event": "Hangup"})
            assert r.status_code == 400 and "CallUUID" in r.text
            r = await http.post(f"{base}/callbacks/stream", data={"Event": "StartStream"})
            assert r.status_code == 400 and "StreamID" in r.text
            r = await http.post(f"{base}/callbacks/recording", data={"call_uuid": CALL})
            assert r.status_code == 400 and "recording_id" in r.text
            r = await http.post(
                f"{base}/callbacks/hangup",
                content=b"CallUUID=" + b"x" * 70000,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert r.status_code == 413
            r = await http.post(
                f"{base}/callbacks/hangup",
                content=b"CallUUID=\xff\xfe",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert r.status_code == 400
            assert (await http.put(f"{base}/answer")).status_code == 405
            assert (await http.get(f"{base}/nothing-here")).status_code == 404
            assert (await http.get(f"{base}/healthz")).text == "ok\n"
            # The hangup callback may come to the answer URL (no hangup_url given).
            r = await http.post(f"{base}/answer", data={"CallUUID": CALL, "Event": "Hangup"})
            assert r.status_code == 200 and r.json()["delivered"] == 0


# -- live streams ----------------------------------------------------------------------------


async def test_callbacks_reach_the_live_streams_handlers_and_streams_lists_it(
    make_settings: Callable[..., Settings],
) -> None:
    loop = asyncio.get_running_loop()
    sink: dict[str, Any] = {"started": loop.create_future(), "events": asyncio.Queue()}
    seen: list[Callback] = []
    async with control_app(make_settings, probe=sink) as (server, app):
        app.add_listener(seen.append)
        client = PlivoStreamClient(
            StreamClientOptions(
                url=f"{server.url}/stream",
                inbound=np.zeros(8000 * 60, dtype=np.int16),
                call_id=CALL,
                bidirectional=True,
            )
        )
        run = asyncio.ensure_future(client.run())
        try:
            ctx = await asyncio.wait_for(sink["started"], TIMEOUT)
            stream_id = ctx.stream_id
            async with httpx.AsyncClient() as http:
                # A stream callback goes to the stream it names.
                url = app.callback_url("stream")
                params = {"CallUUID": CALL, "StreamID": stream_id, "Event": "DegradedStream"}
                r = await post(http, url, params)
                assert r.json() == {"ok": True, "delivered": 1}
                event = await asyncio.wait_for(sink["events"].get(), TIMEOUT)
                assert event.topic == CALLBACK_TOPIC and event.source == "control"
                cb = event.data
                assert (cb.kind, cb.event, cb.call_uuid, cb.stream_id) == (
                    "stream",
                    "DegradedStream",
                    CALL,
                    stream_id,
                )
                assert cb.params["Event"] == "DegradedStream" and cb.delivered == 1
                # Another stream's id reaches nobody.
                other = {**params, "StreamID": "not-this-one"}
                assert (await post(http, url, other)).json()["delivered"] == 0
                # A callback naming only the call reaches every stream of the call.
                url = app.callback_url("recording")
                params = {"call_uuid": CALL, "recording_id": "rec-1", "record_url": "x"}
                assert (await post(http, url, params)).json()["delivered"] == 1
                event = await asyncio.wait_for(sink["events"].get(), TIMEOUT)
                assert (event.data.kind, event.data.stream_id) == ("recording", "")

                listing = (await http.get(f"{app.base_url}/streams")).json()
                assert listing["count"] == 1
                (row,) = listing["streams"]
                assert row["call_id"] == CALL and row["stream_id"] == stream_id
                assert row["route"] == "/stream" and row["handlers"] == ["probe"]
                for key in ("duration_s", "frames", "gaps", "handler_dropped_samples"):
                    assert key in row
                assert row["frames"] >= 1 and row["started_at"] > 0
        finally:
            await client.aclose()
            report = await asyncio.wait_for(run, TIMEOUT)
        assert report.connected
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{app.base_url}/streams")).json() == {
                "count": 0,
                "streams": [],
            }
    assert [(c.kind, c.delivered) for c in seen] == [
        ("stream", 1),
        ("stream", 0),
        ("recording", 1),
    ]


# -- settings --------------------------------------------------------------------------------


def test_control_settings_defaults_and_errors() -> None:
    s = load_settings(None, environ={})
    cs = load_control_settings(s)
    assert cs == ControlSettings()
    assert not cs.enabled and cs.port == 8081 and cs.route == "/stream"

    env = {"STREAMSERVER_CONTROL__ENABLED": "true", "STREAMSERVER_CONTROL__PORT": "9001"}
    cs = load_control_settings(load_settings(None, environ=env))
    assert cs.enabled and cs.port == 9001

    def bad(table: dict[str, Any], routes: dict[str, Any] | None = None) -> str:
        s = load_settings(None, environ={})
        if routes is not None:
            from streamserver.settings import RouteSettings

            s.routes = {p: RouteSettings(**r) for p, r in routes.items()}
        s.extra["control"] = table
        with pytest.raises(ConfigError) as err:
            load_control_settings(s)
        return str(err.value)

    assert "control.colour: unknown key" in bad({"colour": "blue"})
    assert "control.port" in bad({"port": 70000})
    assert "control.port" in bad({"port": "eighty"})
    assert "control.enabled" in bad({"enabled": "maybe"})
    assert "control.public_url" in bad({"public_url": "ftp://x"})
    assert "control.content_type" in bad({"content_type": "audio/mp3"})
    assert "control.audio_track" in bad({"audio_track": "left"})
    assert "control.extra_headers" in bad({"extra_headers": ["a"]})
    assert "control.route" in bad({"enabled": True, "route": "/nope"})
    assert "not bidirectional" in bad(
        {"enabled": True}, {"/stream": {"handlers": ["recorder"], "bidirectional": False}}
    )
    # Plivo's own rules, checked by the XML builder at start-up.
    assert "audioTrack" in bad({"enabled": True, "audio_track": "both"})
    assert "extraHeaders" in bad({"enabled": True, "extra_headers": {"bad-key": "v"}})
    # Disabled: the stream options are not checked against the routes.
    s = load_settings(None, environ={})
    s.extra["control"] = {"route": "/nope", "extra_headers": "a=1,b=2"}
    assert load_control_settings(s).extra_headers == {"a": "1", "b": "2"}


# -- streamserver serve ----------------------------------------------------------------------


def test_serve_runs_the_control_app_and_stops_it_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        "[server]\nport = 0\ngc_freeze = false\n"
        f'[handler.recorder]\nrecord_dir = "{tmp_path / "rec"}"\n'
        '[control]\nenabled = true\nport = 0\n[plivo]\nauth_token = ""\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "STREAMSERVER_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamserver", "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        control_url = ""
        for line in proc.stderr:
            if line.startswith("control app on "):
                control_url = line.split()[-1]
                break
        assert control_url.startswith("http://127.0.0.1:")
        r = httpx.get(f"{control_url}/healthz", timeout=TIMEOUT)
        assert r.status_code == 200
        r = httpx.post(f"{control_url}/answer", timeout=TIMEOUT)
        assert r.status_code == 200 and "<Stream" in r.text
        assert httpx.get(f"{control_url}/streams", timeout=TIMEOUT).json()["count"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_serve_rejects_a_bad_control_table(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[control]\nenabled = true\nroute = "/missing"\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "streamserver", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )
    assert proc.returncode == 2
    assert "control.route" in proc.stderr


def test_documented_defaults_are_the_real_defaults() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "config" / "streamserver.toml", environ={})
    assert load_control_settings(settings) == ControlSettings()


async def test_callback_fields_cannot_forge_log_lines(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 16, defect 7: CallUUID / HangupCause were logged raw.
    forged = {
        "CallUUID": CALL + "\nERROR streamserver: FORGED LINE",
        "HangupCause": "NORMAL_CLEARING\r\nERROR forged" + "x" * 60_000,
    }
    async with control_app(make_settings) as (_, app):
        async with httpx.AsyncClient() as http:
            url = app.callback_url("hangup")
            with caplog.at_level("INFO", "streamserver.control"):
                r = await post(http, url, forged)
    assert r.status_code == 200
    (line,) = [r.getMessage() for r in caplog.records if "ended" in r.getMessage()]
    assert "\n" not in line and "\r" not in line and "\\nERROR" in line
    assert len(line) < 1000
