"""Calls that do not go well: busy, rejected, unanswered, failed lines, answering machines.

A real emulator on loopback, our REST client placing the calls, a real web app receiving
the ring, hangup and machine-detection callbacks.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from emulator_support import TIMEOUT, Env, running

from streamserver.rest import AsyncPlivoClient, BadRequestError

FROM = "14155550100"
HOLD = '<Response><Wait length="30"/></Response>'


@contextlib.asynccontextmanager
async def plivo(env: Env) -> AsyncIterator[AsyncPlivoClient]:
    async with AsyncPlivoClient(
        env.emu.auth_id, env.emu.auth_token, base_url=env.emu.base_url, timeout_s=TIMEOUT
    ) as client:
        yield client


async def place(env: Env, c: AsyncPlivoClient, to: str, xml: str = HOLD, **kw: Any) -> str:
    env.hooks.xml["/answer"] = xml
    made = await c.calls.make(
        FROM,
        to,
        env.hooks.url("/answer"),
        ring_url=env.hooks.url("/ring"),
        hangup_url=env.hooks.url("/hangup"),
        **kw,
    )
    assert isinstance(made.request_uuid, str)
    return made.request_uuid


@pytest.mark.parametrize(
    ("to", "status", "cause", "code", "source", "rings"),
    [
        ("15550100486", "busy", "Busy Line", 3000, "Callee", False),
        ("+15550100603", "busy", "Rejected", 3010, "Callee", True),
        ("15550100480", "no-answer", "Ring Timeout Reached", 6010, "Plivo", True),
        ("15550100503", "failed", "Destination Out Of Service", 2010, "Carrier", False),
    ],
)
async def test_magic_numbers_end_unanswered_with_plivos_cause(
    tmp_path: Path, to: str, status: str, cause: str, code: int, source: str, rings: bool
) -> None:
    async with running(tmp_path) as env, plivo(env) as c:
        uuid = await place(env, c, to, ring_timeout=1)
        hangup = await env.hooks.next_event("/hangup", "Hangup")
        p = hangup.params
        assert (p["CallUUID"], p["CallStatus"]) == (uuid, status)
        assert (p["HangupCause"], p["HangupCauseCode"], p["HangupSource"]) == (
            cause,
            str(code),
            source,
        )
        assert (p["AnswerTime"], p["Duration"], p["BillDuration"]) == ("", "0", "0")
        await env.emu.simulator.wait_call_ended(uuid)
        cdr = await c.calls.get(uuid)
        assert (cdr.hangup_cause_name, cdr.hangup_cause_code, cdr.hangup_source) == (
            cause,
            code,
            source,
        )
        assert cdr.answer_time is None and cdr.bill_duration == 0
        # Only a line that rings sends the ring callback; no call was answered.
        if rings:
            ring = await env.hooks.next("/ring")
            assert (ring.params["CallUUID"], ring.params["CallStatus"]) == (uuid, "ringing")
    paths = [h.path for h in env.hooks.hits]
    assert "/answer" not in paths
    if not rings:
        assert "/ring" not in paths  # never sent: nothing can still be on its way


async def test_sip_header_and_table_pick_the_outcome(tmp_path: Path) -> None:
    table = {"14155550123": "busy"}
    async with running(tmp_path, outcome_by_number=table) as env, plivo(env) as c:
        # The table: this number is always busy.
        uuid = await place(env, c, "+14155550123")
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.status, call.hangup_cause_code) == ("busy", 3000)
        # The per-call header wins over the table (and over magic numbers).
        uuid = await place(env, c, "14155550123", sip_headers={"EmulatorOutcome": "rejected"})
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.status, call.hangup_cause_name) == ("busy", "Rejected")
        uuid = await place(
            env, c, "15550100486", "<Response/>", sip_headers="EmulatorOutcome=answer"
        )
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.status, call.hangup_cause_name) == ("completed", "End Of XML Instructions")
        assert "/answer" in {h.path for h in env.hooks.hits}
        # A header naming no outcome is refused before anything is dialled.
        with pytest.raises(BadRequestError, match="EmulatorOutcome"):
            await place(env, c, "14155550199", sip_headers={"EmulatorOutcome": "maybe"})


async def test_a_ring_longer_than_ring_timeout_is_not_answered(tmp_path: Path) -> None:
    async with running(tmp_path, ring_s=30.0) as env, plivo(env) as c:
        uuid = await place(env, c, "14155550199", ring_timeout=1)
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.status, call.hangup_cause_name) == ("no-answer", "Ring Timeout Reached")
        assert call.answer_time is None


async def test_machine_detection_reports_and_hangs_up_on_machines(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env, plivo(env) as c:
        md = {
            "machine_detection_time": 2000,
            "machine_detection_url": env.hooks.url("/amd"),
            "machine_detection_method": "POST",
        }
        # A machine with machine_detection=hangup: reported, then hung up.
        uuid = await place(env, c, "15550100201", machine_detection="hangup", **md)
        verdict = await env.hooks.next("/amd")
        p = verdict.params
        assert (p["Event"], p["Machine"], p["IfMachine"]) == ("MachineDetection", "true", "hangup")
        assert (p["CallUUID"], p["CallStatus"], p["Direction"]) == (uuid, "in-progress", "outbound")
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.hangup_cause_name, call.hangup_cause_code, call.hangup_source) == (
            "Machine Detected",
            6020,
            "Plivo",
        )
        assert call.status == "completed" and call.answer_time is not None
        # A machine with machine_detection=true: reported, the call goes on.
        uuid = await place(env, c, "14155550199", machine_detection=True, sip_headers={
            "EmulatorOutcome": "machine"
        }, **md)  # fmt: skip
        verdict = await env.hooks.next("/amd")
        assert (verdict.params["Machine"], verdict.params["IfMachine"]) == ("true", "continue")
        assert not env.emu.store.calls[uuid].ended
        await c.calls.hangup(uuid)
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert call.hangup_source == "API Request"
        # A person: Machine=false.
        uuid = await place(env, c, "14155550199", machine_detection="hangup", **md)
        verdict = await env.hooks.next("/amd")
        assert verdict.params["Machine"] == "false"
        assert not env.emu.store.calls[uuid].ended
        await c.calls.hangup(uuid)
        await env.emu.simulator.wait_call_ended(uuid)
        # Plivo's range for the detection window is checked.
        with pytest.raises(BadRequestError, match="machine_detection_time"):
            await place(env, c, "14155550199", machine_detection=True, machine_detection_time=1)
