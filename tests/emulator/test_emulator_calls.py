"""The call simulator: answer URLs fetched signed, XML run, audio really streamed/recorded."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf
from emulator_support import TIMEOUT, Hit, noise, running, write_wav, ws_recorder
from websockets.asyncio.server import ServerConnection

from streamserver.emulator.media import tone_for_text
from streamserver.signature import UpgradeVerifier, verify_v2, verify_v3


def assert_signed(hit: Hit, token: str) -> None:
    """The webhook carries valid V3 (and Ma-V3, V2) signatures over its URL and form."""
    h = hit.headers
    nonce = h["x-plivo-signature-v3-nonce"]
    params = hit.params if hit.method == "POST" else None
    assert verify_v3(hit.url, nonce, h["x-plivo-signature-v3"], [token], params, hit.method)
    assert verify_v3(hit.url, nonce, h["x-plivo-signature-ma-v3"], [token], params, hit.method)
    assert verify_v2(hit.url, h["x-plivo-signature-v2-nonce"], h["x-plivo-signature-v2"], [token])
    assert not verify_v3(hit.url, nonce, h["x-plivo-signature-v3"], ["other-token"], params)


async def test_stream_carries_the_callee_voice_signed_with_callbacks(tmp_path: Path) -> None:
    voice = noise(0.6)  # what the test settings' callee says
    async with ws_recorder() as ws, running(tmp_path) as env:
        xml = (
            f'<Response><Stream keepCallAlive="true" contentType="audio/x-l16;rate=8000" '
            f'extraHeaders="tenant=acme,lang=en" statusCallbackUrl="{env.hooks.url("/ss")}">'
            f"{ws.url}</Stream><Speak>after the stream</Speak></Response>"
        )
        uuid = await env.call(xml, ring_url=env.hooks.url("/ring"))
        ring = await env.hooks.next("/ring")
        assert ring.params["Event"] == "Ring" and ring.params["CallStatus"] == "ringing"
        answer = await env.hooks.next("/answer")
        assert_signed(answer, env.emu.auth_token)
        p = answer.params
        assert (p["Event"], p["CallStatus"], p["Direction"]) == (
            "StartApp",
            "in-progress",
            "outbound",
        )
        assert p["CallUUID"] == p["ALegUUID"] == p["RequestUUID"] == uuid
        assert p["From"] == "14155550100" and p["To"] == "14155550199"
        assert p["ParentAuthID"] == env.emu.auth_id
        started = await env.hooks.next_event("/ss", "StartStream")
        stopped = await env.hooks.next_event("/ss", "StopStream")
        assert started.params["StreamID"] == stopped.params["StreamID"]
        assert_signed(stopped, env.emu.auth_token)
        call = await env.emu.simulator.wait_call_ended(uuid)
        await asyncio.wait_for(ws.closed.wait(), TIMEOUT)
    # The upgrade was signed like Plivo's.
    verifier = UpgradeVerifier([env.emu.auth_token], ws.url.rsplit("/", 1)[0])
    assert verifier.verify(ws.paths[0], ws.headers[0]).ok
    start = ws.frames[0]
    assert start["event"] == "start" and start["sequenceNumber"] == 1
    assert start["start"]["callId"] == uuid and start["start"]["tracks"] == ["inbound"]
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-l16", "sampleRate": 8000}
    assert start["extra_headers"] == "tenant=acme;lang=en"
    assert ws.frames[-1]["event"] == "stop"
    # Sample for sample what the callee said, then silence until they hung up.
    heard = ws.inbound_pcm()
    assert np.array_equal(heard[: len(voice)], voice)
    assert not heard[len(voice) :].any()
    assert len(heard) >= len(voice) + 0.25 * 8000
    # The callee hung up 0.3 s after speaking, before the <Speak>.
    assert (call.hangup_cause_name, call.hangup_source) == ("Normal Hangup", "Callee")
    hangup = await env.hooks.next_event("/hangup", "Hangup")
    assert hangup.params["HangupCauseCode"] == "4000" and hangup.params["Duration"] == "1"


async def test_bidirectional_stream_records_what_the_caller_heard(tmp_path: Path) -> None:
    async def echo(ws: ServerConnection, frame: dict[str, Any]) -> None:
        if frame["event"] == "media":
            media = {
                "contentType": "audio/x-mulaw",
                "sampleRate": 8000,
                "payload": frame["media"]["payload"],
            }
            await ws.send(json.dumps({"event": "playAudio", "media": media}))

    async with ws_recorder(echo) as ws, running(tmp_path) as env:
        xml = (
            '<Response><Stream bidirectional="true" keepCallAlive="true" '
            f'contentType="audio/x-mulaw;rate=8000">{ws.url}</Stream></Response>'
        )
        uuid = await env.call(xml)
        await env.emu.simulator.wait_call_ended(uuid)
        (stream,) = env.emu.simulator.streams_of(uuid)
        report = env.emu.simulator.stream_report(stream.stream_id)
        assert report is not None
        async with httpx.AsyncClient(timeout=TIMEOUT) as plain:
            wav = await plain.get(
                f"{env.emu.base_url}/emulator/Stream/{stream.stream_id}/heard.wav"
            )
            missing = await plain.get(f"{env.emu.base_url}/emulator/Stream/nope/heard.wav")
        assert missing.status_code == 404
    saved, _ = sf.read(io.BytesIO(wav.content), dtype="int16")
    assert np.array_equal(saved, report.heard)
    assert report.connected and report.frames_sent > 0
    sent = np.concatenate(
        [
            np.frombuffer(base64.b64decode(f["media"]["payload"]), dtype=np.uint8)
            for f in ws.events("media")
        ]
    )
    from streamserver.audio import ulaw_decode

    voice = ulaw_decode(sent.tobytes())[: int(0.6 * 8000)]
    # The echo came back a little later, on a 20 ms playback tick: exactly, segment by
    # segment (a loaded machine may split it with silence), and soon.
    assert report.played_segments and report.played_segments[0][0] < 0.5
    heard = np.concatenate(
        [report.heard[round(b * 8000) : round(e * 8000)] for b, e in report.played_segments]
    )
    assert np.array_equal(heard[:2000], voice[:2000])
    assert report.echo_rtt_ms


async def test_record_verb_action_callback_and_file(tmp_path: Path) -> None:
    voice = noise(2.0, seed=11)
    audio = write_wav(tmp_path / "voice.wav", voice)
    async with running(tmp_path, caller_audio=str(audio), caller_dtmf=[(0.5, "#")]) as env:
        env.hooks.xml["/recorded"] = "<Response><Hangup/></Response>"
        xml = (
            f'<Response><Record action="{env.hooks.url("/recorded")}" fileFormat="wav" '
            f'maxLength="5" finishOnKey="#" callbackUrl="{env.hooks.url("/rec-cb")}"/>'
            "<Speak>not reached</Speak></Response>"
        )
        uuid = await env.call(xml)
        action = await env.hooks.next("/recorded")
        assert_signed(action, env.emu.auth_token)
        p = action.params
        assert p["Digits"] == "#" and p["CallUUID"] == uuid
        assert 400 <= int(p["RecordingDurationMs"]) <= 500
        assert int(p["RecordingEndMs"]) - int(p["RecordingStartMs"]) == int(
            p["RecordingDurationMs"]
        )
        cb = await env.hooks.next("/rec-cb")
        assert (
            cb.params["recording_id"] == p["RecordingID"]
            and cb.params["record_url"] == p["RecordUrl"]
        )
        async with httpx.AsyncClient(timeout=TIMEOUT) as plain:
            wav = await plain.get(p["RecordUrl"])
        samples, rate = sf.read(io.BytesIO(wav.content), dtype="int16")
        assert rate == 8000
        # Recorded from the start of <Record> to the # at 0.5 s: the callee's own samples.
        start = int(0.5 * 8000) - len(samples)
        assert 0 <= start < 800 and np.array_equal(samples, voice[start : start + len(samples)])
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert call.hangup_source == "Answer XML"


async def test_record_stops_after_silence_timeout(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        xml = (
            f'<Response><Record action="{env.hooks.url("/recorded")}" redirect="false" '
            'fileFormat="wav" timeout="1" maxLength="10"/><Hangup/></Response>'
        )
        uuid = await env.call(xml)
        action = await env.hooks.next("/recorded")
        # 0.6 s of voice, then one second of silence ends it.
        assert 1500 <= int(action.params["RecordingDurationMs"]) <= 1700
        assert action.params["Digits"] == ""
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert call.hangup_source == "Answer XML"


async def test_play_speak_wait_redirect_hangup(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        buf = io.BytesIO()
        sf.write(buf, noise(0.2, seed=5), 16000, format="WAV", subtype="PCM_16")
        env.hooks.files["/prompt.wav"] = buf.getvalue()
        env.hooks.xml["/next"] = '<Response><Wait length="1"/><Hangup/></Response>'
        xml = (
            f'<Response><Play loop="2">{env.hooks.url("/prompt.wav")}</Play><Speak>Hi</Speak>'
            f'<Redirect method="GET">{env.hooks.url("/next")}</Redirect>'
            "<Speak>skipped</Speak></Response>"
        )
        uuid = await env.call(xml)
        redirect = await env.hooks.next("/next")
        assert redirect.method == "GET" and redirect.params["Event"] == "Redirect"
        assert_signed(redirect, env.emu.auth_token)
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.hangup_cause_name, call.hangup_source) == ("Normal Hangup", "Answer XML")
        rt = call.runtime
        # What the callee heard: the prompt twice (0.1 s each at 8 kHz), then the speech tone.
        starts = [seg.start for seg in rt.outbound]
        lengths = [len(seg.pcm) for seg in rt.outbound]
        assert lengths == [800, 800, len(tone_for_text("Hi"))]
        assert starts[1] - starts[0] >= 800 and starts[2] - starts[1] >= 800
        assert call.end_time is not None and call.answer_time is not None
        assert call.end_time - call.answer_time >= 0.2 + len(tone_for_text("Hi")) / 8000 + 1.0


async def test_answer_url_failures_and_end_of_xml(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        env.hooks.xml["/fallback"] = "<Response/>"
        uuid = await env.call("<Response><Bogus/>", fallback_url=env.hooks.url("/fallback"))
        call = await env.emu.simulator.wait_call_ended(uuid)
        # Malformed XML from the answer URL itself: invalid, no fallback for that.
        assert (call.hangup_cause_name, call.hangup_cause_code) == ("Invalid Answer XML", 8011)
        env.hooks.status["/missing"] = 500
        uuid = await env.call(
            "<Response/>",
            answer_url=env.hooks.url("/missing"),
            fallback_url=env.hooks.url("/fallback"),
        )
        await env.hooks.next("/fallback")
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.hangup_cause_name, call.hangup_cause_code) == ("End Of XML Instructions", 4010)
        uuid = await env.call("<Response/>", answer_url="http://127.0.0.1:9/unreachable")
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.hangup_cause_name, call.hangup_cause_code) == ("Answer URL Unreachable", 8001)
        for xml in (
            "<Speak>no response root</Speak>",
            '<Response><Stream bidirectional="true" audioTrack="both">ws://x/s</Stream></Response>',
            "<Response><Stream>http://not-ws</Stream></Response>",
            '<Response><Wait length="soon"/></Response>',
            "<Response><Play/></Response>",
            "<Response><Dial>123</Dial></Response>",
        ):
            call = await env.emu.simulator.wait_call_ended(await env.call(xml))
            assert call.hangup_cause_code == 8011, xml
        # Unknown and unsimulated verbs are skipped, not fatal.
        uuid = await env.call("<Response><PreAnswer/><Fancy/><Hangup/></Response>")
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert call.hangup_source == "Answer XML"


async def test_hangup_schedule_time_limit_and_invalid_destination(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        uuid = await env.call('<Response><Hangup schedule="1"/><Wait length="30"/></Response>')
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.hangup_cause_name, call.hangup_cause_code) == ("Scheduled Hangup", 5010)
        uuid = await env.call(
            '<Response><Wait length="30"/></Response>', time_limit=1, send_digits="1w2"
        )
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert call.hangup_cause_name == "Time Limit Reached" and call.duration_s == 1
        assert env.emu.simulator.digits_sent(uuid) == ["1w2"]
        uuid = await env.call("<Response/>", to="not-a-number")
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert (call.hangup_cause_name, call.hangup_cause_code) == (
            "Invalid Destination Address",
            2000,
        )
        assert call.answer_time is None and call.status == "failed"


async def test_rest_stream_gets_scripted_dtmf_and_both_tracks(tmp_path: Path) -> None:
    async with ws_recorder() as ws, running(tmp_path, caller_dtmf=[(0.4, "7")]) as env:
        uuid = await env.call('<Response><Wait length="5"/></Response>')
        await env.emu.simulator.wait_call_answered(uuid)
        r = await env.http.post(
            f"Call/{uuid}/Stream/",
            json={
                "service_url": ws.url,
                "audio_track": "both",
                "content_type": "audio/x-l16;rate=16000",
            },
        )
        assert r.status_code == 201
        await env.emu.simulator.wait_call_ended(uuid)
        await asyncio.wait_for(ws.closed.wait(), TIMEOUT)
    start = ws.events("start")[0]["start"]
    assert start["tracks"] == ["inbound", "outbound"]
    assert start["mediaFormat"] == {"encoding": "audio/x-l16", "sampleRate": 16000}
    tracks = {f["media"]["track"] for f in ws.events("media")}
    assert tracks == {"inbound", "outbound"}
    assert len(base64.b64decode(ws.events("media")[0]["media"]["payload"])) == 640
    dtmf = ws.events("dtmf")
    assert [d["dtmf"]["digit"] for d in dtmf] == ["7"]


async def test_stream_that_cannot_connect_is_dropped_after_retries(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=5) as env:
        xml = (
            f'<Response><Stream keepCallAlive="true" statusCallbackUrl="{env.hooks.url("/ss")}">'
            "ws://127.0.0.1:9/nowhere</Stream><Hangup/></Response>"
        )
        uuid = await env.call(xml)
        dropped = await env.hooks.next_event("/ss", "DroppedStream")
        assert "Error" in dropped.params
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert call.hangup_source == "Answer XML"
        stream = next(s for s in env.emu.store.streams.values() if s.call_uuid == uuid)
        assert stream.status == "failed" and stream.start_time is None
        # The first attempt and Plivo's two retries.
        reports = env.emu.simulator.stream_reports(stream.stream_id)
        assert [r.connected for r in reports] == [False, False, False]


async def test_mpc_added_calls_and_group_recording_mix(tmp_path: Path) -> None:
    voice = noise(2.0, seed=21)
    audio = write_wav(tmp_path / "voice.wav", voice)
    async with running(tmp_path, caller_audio=str(audio), caller_hangup_after_audio_s=-1) as env:
        xml = '<Response><MultiPartyCall role="customer">Desk</MultiPartyCall><Hangup/></Response>'
        uuid = await env.call(xml)

        async def customer_joined() -> None:
            while (mpc := env.emu.store.find_mpc("name_Desk")) is None or not mpc.participants:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(customer_joined(), TIMEOUT)
        r = await env.http.post(
            "MultiPartyCall/name_Desk/Participant/",
            json={"role": "agent", "from": "14155550100", "to": "14155550177"},
        )
        assert r.status_code == 201
        mpc = env.emu.store.find_mpc("name_Desk")
        assert mpc is not None and mpc.status == "Active"
        r = await env.http.post("MultiPartyCall/name_Desk/Record/", json={"file_format": "wav"})
        url = r.json()["recording_url"]
        await asyncio.sleep(0.3)  # both callees talk; the recording mixes them
        assert (await env.http.delete("MultiPartyCall/name_Desk/")).status_code == 204
        # The XML participant goes on with its XML (a Hangup); the API one is hung up.
        assert (await env.emu.simulator.wait_call_ended(uuid)).hangup_source == "Answer XML"
        async with httpx.AsyncClient(timeout=TIMEOUT) as plain:
            wav = await plain.get(url)
        mix, _ = sf.read(io.BytesIO(wav.content), dtype="int16")
        assert len(mix) >= 2000 and np.abs(mix).max() > 0
