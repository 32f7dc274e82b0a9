"""The call emulator's per-stream network faults: ``<Stream emulatorFaults="...">`` and the
Stream API's ``emulator_faults`` reach the stream client (drops and all), bad text is
refused like any invalid XML or parameter."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from emulator_support import TIMEOUT, running, ws_recorder

from streamserver.emulator.xml import StreamVerb, XmlError, parse_answer_xml
from streamserver.netfaults import NetFaults, plan_frames


async def test_stream_xml_faults_drop_frames_on_the_wire(tmp_path: Path) -> None:
    faults = "drop=25,seed=3"
    async with ws_recorder() as ws, running(tmp_path) as env:
        xml = (
            f'<Response><Stream emulatorFaults="{faults}" keepCallAlive="true" '
            f'contentType="audio/x-mulaw;rate=8000">'
            f"{ws.url}</Stream></Response>"
        )
        uuid = await env.call(xml)
        await env.emu.simulator.wait_call_ended(uuid)
        await asyncio.wait_for(ws.closed.wait(), TIMEOUT)
        report = env.emu.simulator.streams.report(ws.frames[0]["start"]["streamId"])
    chunks = [f["media"]["chunk"] for f in ws.frames if f["event"] == "media"]
    n = max(chunks)
    plan = plan_frames(NetFaults.parse(faults), n, 0.02)
    assert plan.lost and chunks == [k + 1 for k in plan.frames if k < n]
    assert report is not None and report.faults == faults
    assert report.fault_counts["dropped"] >= len(plan.lost)


def test_stream_xml_faults_are_parsed_and_checked() -> None:
    (verb,) = parse_answer_xml(
        '<Response><Stream emulatorFaults="reorder=10:2,jitter=30">ws://h/s</Stream></Response>'
    )
    assert isinstance(verb, StreamVerb)
    assert verb.faults == NetFaults(reorder_pct=10, reorder_window=2, jitter_ms=30)
    with pytest.raises(XmlError, match=r"emulatorFaults.*not a fault plan.*drop_pct"):
        parse_answer_xml('<Response><Stream emulatorFaults="drop=400">ws://h/s</Stream></Response>')


async def test_stream_api_takes_emulator_faults(tmp_path: Path) -> None:
    async with ws_recorder() as ws, running(tmp_path) as env:
        uuid = await env.call('<Response><Wait length="2"/></Response>')
        await env.emu.simulator.wait_call_answered(uuid)
        bad = await env.http.post(
            f"Call/{uuid}/Stream/", json={"service_url": ws.url, "emulator_faults": "vanish=x"}
        )
        assert bad.status_code == 400 and "emulator_faults" in bad.text
        ok = await env.http.post(
            f"Call/{uuid}/Stream/",
            json={"service_url": ws.url, "emulator_faults": "dup=50,seed=1"},
        )
        assert ok.status_code == 201, ok.text
        await env.emu.simulator.wait_call_ended(uuid)
        await asyncio.wait_for(ws.closed.wait(), TIMEOUT)
    chunks = [f["media"]["chunk"] for f in ws.frames if f["event"] == "media"]
    assert len(chunks) > len(set(chunks)) > 10  # copies, each right after its original
    assert sorted(set(chunks)) == list(range(1, max(chunks) + 1))
