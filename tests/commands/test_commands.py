"""The REST commands (call, streams, recordings) against the real emulator and server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from streamserver.cli import build_parser, main
from streamserver.commands.call import control_url_from
from streamserver.control import Callback, ControlApp, load_control_settings
from streamserver.emulator import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, Emulator, EmulatorSettings
from streamserver.net import StreamServer
from streamserver.rest import AsyncPlivoClient
from streamserver.settings import Settings

TIMEOUT = 10.0
FROM = "14155550100"
TO = "14155550101"


async def run_cli(argv: list[str]) -> int:
    """``streamserver ARGV`` in this event loop (the emulator runs here too)."""
    args = build_parser().parse_args(argv)
    result = args.func(args)
    if asyncio.iscoroutine(result):
        result = await result
    return int(result)


@dataclass
class Stack:
    server: StreamServer
    control: ControlApp
    emulator: Emulator
    callbacks: asyncio.Queue[Callback]

    @property
    def api(self) -> list[str]:
        return ["--api-url", self.emulator.base_url]

    async def next_callback(self, event: str, call_uuid: str) -> Callback:
        while True:
            cb = await asyncio.wait_for(self.callbacks.get(), TIMEOUT)
            if cb.event == event and cb.call_uuid == call_uuid:
                return cb


@asynccontextmanager
async def stack(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Stack]:
    settings = make_settings(routes={"/stream": {"handlers": ["recorder"], "bidirectional": True}})
    settings.plivo.auth_token = DEFAULT_AUTH_TOKEN
    settings.extra["control"] = {"enabled": True, "port": 0}
    server = StreamServer(settings)
    control = ControlApp(server, load_control_settings(settings))
    queue: asyncio.Queue[Callback] = asyncio.Queue()
    control.add_listener(queue.put_nowait)
    voice = tmp_path / "voice.wav"
    rng = np.random.default_rng(3)
    sf.write(str(voice), rng.integers(-6000, 6000, 8000 * 30).astype(np.int16), 8000)
    emulator = Emulator(
        EmulatorSettings(
            port=0,
            auth_id=DEFAULT_AUTH_ID,
            auth_token=DEFAULT_AUTH_TOKEN,
            ring_s=0,
            calls_per_second=0,
            caller_audio=str(voice),
            tts="tone",
        )
    )
    await server.start()
    await control.start()
    await emulator.start()
    try:
        yield Stack(server, control, emulator, queue)
    finally:
        await emulator.aclose()
        await control.aclose()
        await server.shutdown()


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLIVO_AUTH_ID", DEFAULT_AUTH_ID)
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN)
    monkeypatch.delenv("PLIVO_API_URL", raising=False)
    monkeypatch.delenv("STREAMSERVER_CONTROL_URL", raising=False)
    monkeypatch.delenv("PLIVO_FROM_NUMBER", raising=False)


def last_json(out: str) -> Any:
    return json.loads(out)


async def test_call_streams_and_recordings_end_to_end(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    creds: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with stack(make_settings, tmp_path) as st:
        api = st.api
        # call: answer with the control app's <Stream>, to an explicit WebSocket URL.
        ws = f"{st.server.url}/stream"
        rc = await run_cli(
            ["call", *api, "--to", TO, "--from", FROM, "--stream-url", ws,
             "--control-url", st.control.public_url, "--json"]
        )  # fmt: skip
        assert rc == 0
        created = last_json(capsys.readouterr().out)
        call_uuid = created["request_uuid"]
        assert created["message"] == "call fired"
        assert created["answer_url"].startswith(f"{st.control.public_url}/answer?stream_url=ws")
        assert created["hangup_url"] == f"{st.control.public_url}/callbacks/hangup"
        started = await st.next_callback("StartStream", call_uuid)
        stream_id = started.stream_id

        # streams list: table and JSON.
        assert await run_cli(["streams", "list", *api, "--call", call_uuid]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split()[:3] == ["stream_id", "status", "track"]
        assert stream_id in table[1] and "in-progress" in table[1] and ws in table[1]
        assert await run_cli(["streams", "list", *api, "--call", call_uuid, "--json"]) == 0
        listed = last_json(capsys.readouterr().out)
        assert [o["stream_id"] for o in listed["objects"]] == [stream_id]

        # A recording of the call, made with the client, for the recordings commands.
        async with AsyncPlivoClient(
            DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, base_url=st.emulator.base_url
        ) as plivo:
            rec = await plivo.calls.record(call_uuid, file_format="wav")
        assert rec.recording_id

        # streams stop one: the stream ends, then the call (end of its XML).
        rc = await run_cli(["streams", "stop", *api, "--call", call_uuid, "--stream", stream_id])
        assert rc == 0
        assert capsys.readouterr().out.strip() == f"stopped stream {stream_id} of call {call_uuid}"
        await st.next_callback("StopStream", call_uuid)
        await st.emulator.simulator.wait_call_ended(call_uuid, TIMEOUT)
        hangup = await st.next_callback("Hangup", call_uuid)
        assert hangup.kind == "hangup"
        # Stopping a stream of an ended call is an API error: one line, exit 1.
        rc = await run_cli(["streams", "stop", *api, "--call", call_uuid, "--stream", stream_id])
        err = capsys.readouterr().err
        assert rc == 1 and len(err.strip().splitlines()) == 1
        assert err.startswith("streamserver streams stop: DELETE ") and "-> 404" in err

        # recordings list / download / delete.
        assert await run_cli(["recordings", "list", *api, "--call", call_uuid, "--json"]) == 0
        objects = last_json(capsys.readouterr().out)["objects"]
        assert [o["recording_id"] for o in objects] == [rec.recording_id]
        assert await run_cli(["recordings", "list", *api, "--all"]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].startswith("recording_id") and rec.recording_id in table[1]
        assert "wav" in table[1]

        out_dir = tmp_path / "downloads"
        rc = await run_cli(
            ["recordings", "download", *api, rec.recording_id, "--out", f"{out_dir}/"]
        )
        assert rc == 0
        saved = out_dir / f"{rec.recording_id}.wav"
        assert f"saved {rec.recording_id} -> {saved}" in capsys.readouterr().out
        info = sf.info(str(saved))
        assert info.samplerate == 8000 and info.frames > 0
        single = tmp_path / "one.wav"
        rc = await run_cli(
            ["recordings", "download", *api, rec.recording_id, "--out", str(single), "--json"]
        )
        assert rc == 0
        assert last_json(capsys.readouterr().out)[0]["path"] == str(single)
        assert single.read_bytes() == saved.read_bytes()

        assert await run_cli(["recordings", "delete", *api, rec.recording_id]) == 0
        assert capsys.readouterr().out.strip() == f"deleted {rec.recording_id}"
        assert await run_cli(["recordings", "list", *api, "--call", call_uuid]) == 0
        assert capsys.readouterr().out.strip() == "no recordings"
        assert await run_cli(["recordings", "delete", *api, rec.recording_id]) == 1
        err = capsys.readouterr().err
        assert err.startswith("streamserver recordings delete: ") and "404" in err


async def test_call_with_the_control_apps_own_stream_and_streams_stop_all(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    creds: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with stack(make_settings, tmp_path) as st:
        monkeypatch.setenv("STREAMSERVER_CONTROL_URL", st.control.public_url)
        monkeypatch.setenv("PLIVO_API_URL", st.emulator.api_base)  # the account root works too
        monkeypatch.setenv("PLIVO_FROM_NUMBER", FROM)
        assert await run_cli(["call", "--to", TO, "--stream-url"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["status", "request_uuid", "to", "answer_url"]
        call_uuid = lines[1].split()[2]
        assert lines[1].endswith(st.control.answer_url)
        started = await st.next_callback("StartStream", call_uuid)
        (session,) = [s for s in st.server.active_sessions() if s.call_id == call_uuid]
        assert session.stream_id == started.stream_id and session.route.path == "/stream"
        assert await run_cli(["streams", "stop", "--call", call_uuid, "--json"]) == 0
        assert last_json(capsys.readouterr().out) == {"call_uuid": call_uuid, "stopped": "all"}
        await st.next_callback("StopStream", call_uuid)


async def test_call_picks_the_emulated_callees_outcome(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    creds: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with stack(make_settings, tmp_path) as st:
        api = [*st.api, "--control-url", st.control.public_url, "--from", FROM, "--json"]
        # A magic number: the line is busy; the control app hears the hangup.
        assert await run_cli(["call", *api, "--to", "15550100486", "--stream-url"]) == 0
        busy = last_json(capsys.readouterr().out)["request_uuid"]
        hangup = await st.next_callback("Hangup", busy)
        assert (hangup.params["CallStatus"], hangup.params["HangupCauseCode"]) == ("busy", "3000")
        # The same through a SIP header, and machine detection hanging up on a machine.
        rc = await run_cli(
            ["call", *api, "--to", TO, "--stream-url", "--ring-timeout", "5",
             "--sip-headers", "EmulatorOutcome=machine", "--machine-detection", "hangup"]
        )  # fmt: skip
        assert rc == 0
        machine = last_json(capsys.readouterr().out)["request_uuid"]
        hangup = await st.next_callback("Hangup", machine)
        assert hangup.params["HangupCause"] == "Machine Detected"
        assert hangup.params["X-PH-EmulatorOutcome"] == "machine"


async def test_errors_are_one_line_with_exit_codes(
    tmp_path: Path,
    creds: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with Emulator(
        EmulatorSettings(port=0, auth_id=DEFAULT_AUTH_ID, auth_token=DEFAULT_AUTH_TOKEN)
    ) as emu:
        api = ["--api-url", emu.base_url]
        # Wrong token: 401, with a hint.
        rc = await run_cli(["recordings", "list", *api, "--auth-token", "WrongToken123"])
        err = capsys.readouterr().err
        assert rc == 1 and "401" in err and "PLIVO_AUTH_TOKEN" in err
        assert len(err.strip().splitlines()) == 1
        # The API rejects a bad destination: 400 from the call command.
        rc = await run_cli(["call", *api, "--to", FROM, "--from", FROM, "--answer-url",
                            "http://127.0.0.1:9/answer"])  # fmt: skip
        assert rc == 2  # rejected before sending: "to must not contain from_"
        assert "from_" in capsys.readouterr().err
        # Streams of an unknown call.
        rc = await run_cli(["streams", "list", *api, "--call", "no-such-call"])
        assert rc == 1 and "404" in capsys.readouterr().err
    # Nobody listening: a transport error, one line, no retries asked for.
    rc = await run_cli(["recordings", "list", "--api-url", "http://127.0.0.1:9", "--retries", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot reach the API" in err and len(err.strip().splitlines()) == 1
    # Missing pieces: exit 2 with what to do.
    assert await run_cli(["call", "--to", TO, "--answer-url", "https://x.example/a"]) == 2
    assert "--from is required" in capsys.readouterr().err
    assert await run_cli(["call", "--to", TO, "--from", FROM, "--stream-url"]) == 2
    err = capsys.readouterr().err
    assert "[control] enabled = true" in err and "--answer-url" in err
    rc = await run_cli(
        [
            "call",
            "--to",
            TO,
            "--from",
            FROM,
            "--stream-url",
            "http://x",
            "--control-url",
            "http://c",
        ]
    )
    assert rc == 2 and "ws:// or wss://" in capsys.readouterr().err
    assert await run_cli(["recordings", "list", "--api-url", "ftp://x"]) == 2
    monkeypatch.delenv("PLIVO_AUTH_TOKEN")
    assert await run_cli(["recordings", "list"]) == 2
    assert "PLIVO_AUTH_TOKEN" in capsys.readouterr().err


def test_main_exit_codes(creds: None, capsys: pytest.CaptureFixture[str]) -> None:
    # Through main(): the async command runs on its own loop.
    assert main(["recordings", "list", "--api-url", "http://127.0.0.1:9", "--retries", "0"]) == 1
    # Bad arguments: argparse exits with 2.
    with pytest.raises(SystemExit) as exc:
        main(["streams", "stop"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["call", "--to", TO, "--answer-url", "a", "--stream-url"])
    assert exc.value.code == 2
    capsys.readouterr()


def test_control_url_from_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[control]\nenabled = true\nhost = "0.0.0.0"\nport = 8181\n', "utf-8")
    assert control_url_from(str(config)) == "http://127.0.0.1:8181"
    config.write_text('[control]\nenabled = true\npublic_url = "https://c.example/x/"\n', "utf-8")
    assert control_url_from(str(config)) == "https://c.example/x"
    config.write_text("[control]\nenabled = false\n", "utf-8")
    assert control_url_from(str(config)) is None
    repo_demo = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
    assert control_url_from(str(repo_demo)) == "http://127.0.0.1:8081"


def test_default_api_url_is_the_clients() -> None:
    from streamserver.commands._common import DEFAULT_API_URL
    from streamserver.rest import DEFAULT_BASE_URL

    assert DEFAULT_API_URL == DEFAULT_BASE_URL
