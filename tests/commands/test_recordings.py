"""The two kinds of recordings on the command line: Plivo's (``call record start|stop``,
``recordings download`` in the file's real format) and the recorder's own files
(``recordings local``), against the real emulator and server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_commands import FROM, TIMEOUT, TO, creds, run_cli, stack

from streamserver.cli import build_parser
from streamserver.settings import Settings

__all__ = ["creds"]  # the fixture, shared with test_commands


def _magic(path: Path) -> str:
    head = path.read_bytes()[:4]
    if head == b"RIFF":
        return "wav"
    if head[:3] == b"ID3" or (head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return head.hex()


async def test_cloud_record_start_stop_and_download_keeps_the_real_format(
    make_settings: Callable[..., Settings],
    record_dir: Path,
    tmp_path: Path,
    creds: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with stack(make_settings, tmp_path) as st:
        api = st.api
        rc = await run_cli(
            ["call", *api, "--to", TO, "--from", FROM, "--stream-url",
             "--control-url", st.control.public_url, "--json"]
        )  # fmt: skip
        assert rc == 0
        call_uuid = json.loads(capsys.readouterr().out)["request_uuid"]
        await st.next_callback("StartStream", call_uuid)

        rc = await run_cli(["call", "record", "start", *api, call_uuid, "--format", "mp3"])
        assert rc == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split() == ["recording_id", "call_uuid", "url"]
        recording_id = table[1].split()[0]
        await asyncio.sleep(0.3)  # some audio to record (the call runs in real time)
        assert await run_cli(["call", "record", "stop", *api, call_uuid]) == 0
        assert capsys.readouterr().out.strip() == f"stopped recording call {call_uuid}"

        # The file shows up in Plivo's list once written; its format is what the API says.
        for _ in range(int(TIMEOUT / 0.05)):
            assert await run_cli(["recordings", "list", *api, "--call", call_uuid, "--json"]) == 0
            objects = json.loads(capsys.readouterr().out)["objects"]
            if objects:
                break
            await asyncio.sleep(0.05)
        assert [o["recording_id"] for o in objects] == [recording_id]
        fmt = objects[0]["recording_format"]

        # --out x.wav of an MP3 saves x.mp3 (the bytes are never mislabelled) and says so.
        wanted = tmp_path / "x.wav"
        rc = await run_cli(["recordings", "download", *api, recording_id, "--out", str(wanted)])
        assert rc == 0
        out = capsys.readouterr().out
        saved = wanted.with_suffix(f".{fmt}")
        assert saved.exists() and _magic(saved) == fmt
        assert f"-> {saved}" in out
        if fmt != "wav":
            assert not wanted.exists()
            assert f"the recording is {fmt}, so the file is x.{fmt}" in out

        # Stop the stream: the recorder's sidecar is final, and `recordings local` lists it.
        rc = await run_cli(["streams", "stop", *api, "--call", call_uuid])
        assert rc == 0
        capsys.readouterr()
        await st.emulator.simulator.wait_call_ended(call_uuid, TIMEOUT)
        for _ in range(int(TIMEOUT / 0.05)):
            sidecars = list((record_dir / call_uuid).glob("*.json"))
            if sidecars and json.loads(sidecars[0].read_text())["stop_reason"]:
                break
            await asyncio.sleep(0.05)

    assert await run_cli(["recordings", "local", "--record-dir", str(record_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "call_id", "stream_id", "seconds", "samples", "format", "gaps", "ended", "files"
    ]  # fmt: skip
    row = lines[1].split()
    assert (
        row[0] == call_uuid
        and row[2].startswith("inbound:")
        and row[4] == "audio/x-mulaw;rate=8000"
    )
    assert row[6] != "recording" and row[7].endswith(".inbound.wav")
    rc = await run_cli(["recordings", "local", "--record-dir", str(record_dir),
                        "--call", call_uuid, "--json"])  # fmt: skip
    assert rc == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["call_id"] == call_uuid and doc["samples"]["inbound"] > 0
    assert doc["sidecar"].endswith(".json") and doc["gaps"] == 0


async def test_recordings_local_empty_missing_and_bad_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAMSERVER_HANDLER__RECORDER__RECORD_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert await run_cli(["recordings", "local"]) == 2  # ./recordings does not exist
    assert "no record dir 'recordings'" in capsys.readouterr().err
    (tmp_path / "recordings").mkdir()
    assert await run_cli(["recordings", "local"]) == 0
    assert capsys.readouterr().out.strip() == "no local recordings under recordings"
    assert await run_cli(["recordings", "local", "--call", "../etc"]) == 2
    assert "not a call id" in capsys.readouterr().err


def test_help_names_the_two_kinds_apart(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["recordings", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Plivo's cloud recordings" in text and "recorder handler's local files" in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["call", "record", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Plivo keeps the file in the cloud" in text and "recordings local" in text
