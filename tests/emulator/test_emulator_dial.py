"""<Dial> with a simulated callee: answered and bridged, busy, unanswered, failed; the
callbackUrl and action callbacks; the B legs' records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from emulator_support import TIMEOUT, noise, running, write_wav

from streamserver.rest import AsyncPlivoClient


async def test_dial_bridges_an_answering_callee(tmp_path: Path) -> None:
    b_voice = noise(0.8, seed=31)
    numbers = {
        "14155550777": str(write_wav(tmp_path / "b.wav", b_voice)),
        # The A leg's callee talks longer than the bridge lasts: the B leg ends it.
        "14155550199": str(write_wav(tmp_path / "a.wav", noise(30.0, seed=32))),
    }
    async with running(
        tmp_path, caller_audio_by_number=numbers, caller_hangup_after_audio_s=0.4
    ) as env:
        hooks = env.hooks
        hooks.xml["/after"] = "<Response><Hangup/></Response>"
        xml = (
            f'<Response><Dial action="{hooks.url("/after")}" callbackUrl="{hooks.url("/dialcb")}" '
            'callerId="14155550100" timeout="10"><Number>14155550777</Number></Dial></Response>'
        )
        uuid = await env.call(xml)
        answered = await hooks.next_event("/dialcb", "DialAnswer")
        hung_up = await hooks.next_event("/dialcb", "DialHangup")
        action = await hooks.next("/after")
        call = await env.emu.simulator.wait_call_ended(uuid)
        async with AsyncPlivoClient(
            env.emu.auth_id, env.emu.auth_token, base_url=env.emu.base_url, timeout_s=TIMEOUT
        ) as c:
            legs = await c.calls.list(parent_call_uuid=uuid)
    b_uuid = answered.params["DialBLegUUID"]
    assert answered.params["DialAction"] == "answer"
    assert (answered.params["DialALegUUID"], answered.params["DialBLegStatus"]) == (uuid, "answer")
    assert hung_up.params["DialBLegHangupCause"] == "Normal Hangup"
    assert hung_up.params["DialBLegUUID"] == b_uuid and hung_up.params["DialAction"] == "hangup"
    p = action.params
    assert (p["DialStatus"], p["DialALegUUID"], p["DialBLegUUID"]) == ("completed", uuid, b_uuid)
    assert (p["DialRingStatus"], p["DialHangupCause"]) == ("true", "Normal Hangup")
    assert call.hangup_source == "Answer XML"  # the action's <Hangup>
    # The B leg is a call of its own, child of the A leg.
    (leg,) = legs.objects
    assert (leg.call_uuid, leg.to_number, leg.parent_call_uuid) == (b_uuid, "14155550777", uuid)
    assert (leg.from_number, leg.hangup_cause_name, leg.hangup_source) == (
        "14155550100",
        "Normal Hangup",
        "Callee",
    )
    assert leg.answer_time is not None
    # The A leg's far end heard the B callee, sample for sample.
    heard = call.runtime.outbound_slice(0, 8000 * 10)
    start = int(np.flatnonzero(heard)[0])
    assert np.array_equal(heard[start : start + len(b_voice)], b_voice)


async def test_dial_unanswered_outcomes_report_dial_status(tmp_path: Path) -> None:
    cases = {
        "15550100486": ("busy", "false", "Busy Line"),
        "15550100603": ("busy", "true", "Rejected"),
        "15550100480": ("no-answer", "true", "Ring Timeout Reached"),
        "15550100503": ("failed", "false", "Destination Out Of Service"),
    }
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        hooks = env.hooks
        for number, (status, rang, cause) in cases.items():
            hooks.xml["/after"] = "<Response><Hangup/></Response>"
            xml = (
                f'<Response><Dial action="{hooks.url("/after")}" timeout="1">'
                f"<Number>{number}</Number></Dial><Speak>not reached</Speak></Response>"
            )
            uuid = await env.call(xml)
            action = await hooks.next("/after")
            p = action.params
            assert (p["DialStatus"], p["DialRingStatus"], p["DialHangupCause"]) == (
                status,
                rang,
                cause,
            ), number
            assert p["DialBLegUUID"] == "" and p["DialALegUUID"] == uuid
            call = await env.emu.simulator.wait_call_ended(uuid)
            assert call.hangup_source == "Answer XML"


async def test_dial_several_numbers_first_answer_wins(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1, ring_s=0.2) as env:
        hooks = env.hooks
        xml = (
            f'<Response><Dial action="{hooks.url("/after")}" redirect="false" timeLimit="1" '
            'sipHeaders="Room=blue">'
            "<Number>15550100486</Number><Number>14155550111</Number>"
            "<Number>14155550222</Number></Dial><Hangup/></Response>"
        )
        uuid = await env.call(xml)
        action = await hooks.next("/after")
        call = await env.emu.simulator.wait_call_ended(uuid)
        legs = sorted(
            (c for c in env.emu.store.calls.values() if c.parent_call_uuid == uuid),
            key=lambda c: c.to_number,
        )
    assert call.hangup_source == "Answer XML"  # redirect=false: the <Hangup> after it ran
    busy, first, second = (legs[2], legs[0], legs[1])
    assert busy.status == "busy"
    assert first.answer_time is not None and first.call_uuid == action.params["DialBLegUUID"]
    assert second.answer_time is None
    assert (second.status, second.hangup_cause_name) == ("cancel", "Canceled")
    # The bridged callee never hangs up: the <Dial timeLimit> ended it.
    assert first.hangup_cause_name == "Time Limit Reached"
