"""The emulated Plivo REST API over real HTTP: every resource, shape and documented error."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from emulator_support import TIMEOUT, Env, noise, running, write_wav, ws_recorder

HOLD = '<Response><Wait length="30"/></Response>'  # keeps a call live until hung up
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def live_call(env: Env, xml: str = HOLD) -> str:
    uuid = await env.call(xml)
    await env.emu.simulator.wait_call_answered(uuid)
    return uuid


def assert_error(r: httpx.Response, status: int, message: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"api_id", "error"}, body
    assert UUID_RE.match(body["api_id"])
    if message is not None:
        assert body["error"] == message, body


# --- conventions ------------------------------------------------------------------------


async def test_auth_account_and_routing_errors(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        base = env.emu.base_url
        async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as anon:
            r = await anon.get(f"/v1/Account/{env.emu.auth_id}/Call/")
            assert_error(r, 401, "authentication failed")
            assert r.headers["www-authenticate"].startswith("Basic")
            r = await anon.get(
                f"/v1/Account/{env.emu.auth_id}/Call/", auth=(env.emu.auth_id, "wrong-token")
            )
            assert_error(r, 401)
            r = await anon.get(
                f"/v1/Account/{env.emu.auth_id}/Call/", headers={"Authorization": "Basic !!!"}
            )
            assert_error(r, 401)
            # Valid credentials, someone else's account: not found.
            r = await anon.get(
                "/v1/Account/MAOTHERACCOUNT000001/Call/", auth=(env.emu.auth_id, env.emu.auth_token)
            )
            assert_error(r, 404, "not found")
            info = (await anon.get("/")).json()
            assert info["auth_id"] == env.emu.auth_id
        assert_error(await env.http.get("Nope/"), 404, "not found")
        assert_error(await env.http.put("Call/"), 405)
        # Trailing slash optional; api_id on every JSON reply.
        r = await env.http.get("Call")
        assert r.status_code == 200 and UUID_RE.match(r.json()["api_id"])
        assert r.json()["objects"] == []


async def test_gate_comes_before_routing(tmp_path: Path) -> None:
    # Credentials are checked first (401) wherever the path leads under the account, then
    # the path (404), then the method (405): no route, file name or method gets around it.
    async with running(tmp_path) as env:
        acct = f"/v1/Account/{env.emu.auth_id}"
        auth = (env.emu.auth_id, env.emu.auth_token)
        async with httpx.AsyncClient(base_url=env.emu.base_url, timeout=TIMEOUT) as c:
            for path in (acct, f"{acct}/", f"{acct}/Nope/", f"{acct}/Recording/x.ogg"):
                assert_error(await c.get(path), 401, "authentication failed")
                assert_error(await c.get(path, auth=auth), 404, "not found")
            assert (await c.head(f"{acct}/Call/", auth=auth)).status_code == 405  # no body
            assert_error(await c.post(f"{acct}/Recording/x.mp3", auth=auth), 405)
            # Recording files and heard.wav are served without credentials; unknown: 404.
            assert_error(await c.get(f"{acct}/Recording/x.mp3"), 404, "not found")
            assert_error(await c.get("/emulator/Stream/x/heard.wav"), 404, "not found")
            assert_error(await c.get("/emulator/Stream/x/heard.wav/"), 404, "not found")
            assert_error(await c.get("/elsewhere"), 404, "not found")


async def test_bodies_json_form_query_unknown_keys(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        env.hooks.xml["/answer"] = "<Response/>"
        answer = env.hooks.url("/answer")
        form = {"from": "14155550100", "to": "14155550101", "answer_url": answer}
        r = await env.http.post("Call/", data=form)
        assert r.status_code == 201 and r.json()["message"] == "call fired"
        # JSON with keys the emulator does not know (the SDK leaks ids like these).
        r = await env.http.post("Call/", json={**form, "call_uuid": "x", "whatever": [1, 2]})
        assert r.status_code == 201
        # Parameters in the query string count too.
        r = await env.http.post("Call/", params=form)
        assert r.status_code == 201
        bad = await env.http.post(
            "Call/", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_error(bad, 400, "invalid JSON in request body")
        assert_error(await env.http.post("Call/", json=[1]), 400)


async def test_make_call_validation(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        ok = {"from": "+14155550100", "to": "14155550101", "answer_url": env.hooks.url("/a")}
        for key in ("from", "to", "answer_url"):
            body = {k: v for k, v in ok.items() if k != key}
            assert_error(
                await env.http.post("Call/", json=body), 400, f"{key} parameter is required"
            )
        cases = [
            ({"answer_url": "ftp://x"}, "invalid answer_url: must be an http(s) URL"),
            ({"to": "14155550100"}, "src and destination cannot overlap"),
            ({"from": "not-a-number"}, "invalid from number"),
            ({"caller_name": "x" * 51}, "caller_name must be at most 50 characters"),
            ({"time_limit": "soon"}, "time_limit must be an integer"),
            ({"answer_method": "PUT"}, "answer_method must be one of GET, POST"),
            ({"machine_detection": "maybe"}, "machine_detection must be one of true, hangup"),
            ({"sip_headers": "novalue"}, "sip_headers must be key=value pairs separated by commas"),
        ]
        for change, message in cases:
            assert_error(await env.http.post("Call/", json={**ok, **change}), 400, message)
        # Several destinations at once: one request uuid each.
        env.hooks.xml["/a"] = "<Response/>"
        r = await env.http.post("Call/", json={**ok, "to": "14155550101<14155550102"})
        assert r.status_code == 201
        assert r.json()["message"] == "calls fired" and len(r.json()["request_uuid"]) == 2


# --- calls ------------------------------------------------------------------------------


async def test_call_live_cdr_hangup_and_list_filters(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        uuid = await live_call(env)
        live = (await env.http.get("Call/", params={"status": "live"})).json()
        assert set(live) == {"api_id", "calls"} and live["calls"] == [uuid]
        got = (await env.http.get(f"Call/{uuid}/", params={"status": "live"})).json()
        assert set(got) == {
            "api_id", "call_status", "call_uuid", "caller_name", "direction", "from",
            "request_uuid", "session_start", "to",
        }  # fmt: skip
        assert got["call_status"] == "in-progress" and got["request_uuid"] == uuid
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$", got["session_start"])
        # No CDR while the call is up.
        assert_error(await env.http.get(f"Call/{uuid}/"), 404)
        assert_error(await env.http.get(f"Call/{uuid}/", params={"status": "queued"}), 404)
        r = await env.http.delete(f"Call/{uuid}/")
        assert r.status_code == 204 and r.content == b""
        assert_error(await env.http.delete(f"Call/{uuid}/"), 404)
        assert_error(await env.http.get(f"Call/{uuid}/", params={"status": "live"}), 404)
        cdr = (await env.http.get(f"Call/{uuid}/")).json()
        assert cdr["hangup_cause_name"] == "Normal Hangup" and cdr["hangup_cause_code"] == 4000
        assert cdr["hangup_source"] == "API Request"
        assert cdr["call_direction"] == "outbound" and cdr["to_number"] == "14155550199"
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+05:30$", cdr["end_time"])
        assert cdr["total_rate"] == "0.00850" and cdr["billed_duration"] % 60 == 0
        assert cdr["resource_uri"] == f"/v1/Account/{env.emu.auth_id}/Call/{uuid}/"
        hangup = await env.hooks.next_event("/hangup", "Hangup")
        assert hangup.params["HangupCause"] == "Normal Hangup"
        assert hangup.params["CallStatus"] == "completed"
        listing = (await env.http.get("Call/", params={"to_number": "+14155550199"})).json()
        assert [o["call_uuid"] for o in listing["objects"]] == [uuid]
        assert listing["meta"]["total_count"] == 1
        for params in (
            {"hangup_cause_code": 4010},
            {"from_number": "1999"},
            {"call_direction": "inbound"},
            {"end_time__lt": "2000-01-01 00:00"},
            {"bill_duration__gt": 100},
        ):
            assert (await env.http.get("Call/", params=params)).json()["objects"] == [], params
        assert (await env.http.get("Call/", params={"end_time__gt": "2000-01-01 00:00:00"})).json()[
            "objects"
        ]
        assert_error(await env.http.get("Call/", params={"end_time__gt": "yesterday"}), 400)
        assert_error(await env.http.get("Call/", params={"status": "sleeping"}), 400)
        assert_error(await env.http.get("Call/", params={"call_direction": "sideways"}), 400)


async def test_cps_queueing_and_cancel_request(tmp_path: Path) -> None:
    async with running(tmp_path, calls_per_second=1, caller_hangup_after_audio_s=-1) as env:
        first = await env.call(HOLD)
        env.hooks.xml["/answer"] = HOLD
        r = await env.http.post(
            "Call/",
            json={"from": "1415555", "to": "14155550198", "answer_url": env.hooks.url("/answer")},
        )
        assert r.json()["message"] == "call queued"
        second = r.json()["request_uuid"]
        queued = (await env.http.get("Call/", params={"status": "queued"})).json()
        assert queued["calls"] == [second]
        got = (await env.http.get(f"Call/{second}/", params={"status": "queued"})).json()
        assert got["call_status"] == "queued"
        assert (await env.http.delete(f"Request/{second}/")).status_code == 204
        cdr = (await env.http.get(f"Call/{second}/")).json()
        assert (cdr["hangup_cause_name"], cdr["hangup_cause_code"]) == ("Canceled", 1000)
        assert cdr["answer_time"] is None and cdr["bill_duration"] == 0
        assert_error(await env.http.delete(f"Request/{second}/"), 404)
        await env.emu.simulator.wait_call_answered(first)
        # An answered call cannot be cancelled as a request.
        assert_error(await env.http.delete(f"Request/{first}/"), 404)


async def test_rate_limit_spares_making_calls(tmp_path: Path) -> None:
    async with running(tmp_path, rate_limit_requests=3, rate_limit_window_s=60) as env:
        for _ in range(3):
            assert (await env.http.get("Call/")).status_code == 200
        r = await env.http.get("Recording/")
        assert_error(r, 429, "too many requests")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        env.hooks.xml["/answer"] = "<Response/>"
        made = await env.http.post(
            "Call/",
            json={"from": "1415555", "to": "1415556", "answer_url": env.hooks.url("/answer")},
        )
        assert made.status_code == 201


async def test_pagination(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        for i in range(5):
            r = await env.http.post(
                "Endpoint/", json={"username": f"user{i}", "password": "secret", "alias": f"a{i}"}
            )
            assert r.status_code == 201
        root = f"/v1/Account/{env.emu.auth_id}/Endpoint/"
        page = (await env.http.get("Endpoint/", params={"limit": 2})).json()
        assert page["meta"] == {
            "limit": 2, "next": f"{root}?limit=2&offset=2", "offset": 0, "previous": None,
            "total_count": 5,
        }  # fmt: skip
        assert len(page["objects"]) == 2
        last = (await env.http.get("Endpoint/", params={"limit": 2, "offset": 4})).json()
        assert last["meta"]["next"] is None
        assert last["meta"]["previous"] == f"{root}?limit=2&offset=2"
        assert len(last["objects"]) == 1
        default = (await env.http.get("Endpoint/")).json()
        assert default["meta"]["limit"] == 20 and len(default["objects"]) == 5
        for params in ({"limit": 0}, {"limit": 21}, {"limit": "many"}, {"offset": -1}):
            assert_error(await env.http.get("Endpoint/", params=params), 400)


async def test_async_mode_posts_the_reply_to_callback_url(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        r = await env.http.get("Call/", params={"callback_url": env.hooks.url("/async")})
        assert r.status_code == 200 and r.json()["message"] == "async api spawned"
        hit = await env.hooks.next("/async")
        assert hit.params["api_id"] == r.json()["api_id"] and hit.params["status_code"] == "200"
        assert "X-Plivo-Signature-V3".lower() in hit.headers


# --- live call actions --------------------------------------------------------------------


async def test_live_call_play_speak_dtmf_transfer(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        buf = io.BytesIO()
        sf.write(buf, noise(0.2), 8000, format="WAV", subtype="PCM_16")
        env.hooks.files["/beep.wav"] = buf.getvalue()
        uuid = await live_call(env)
        r = await env.http.post(f"Call/{uuid}/Play/", json={"urls": env.hooks.url("/beep.wav")})
        assert r.status_code == 202 and r.json()["message"] == "play started"
        await env.hooks.next("/beep.wav")
        assert (await env.http.delete(f"Call/{uuid}/Play/")).status_code == 204
        r = await env.http.post(f"Call/{uuid}/Speak/", json={"text": "Hello there"})
        assert r.status_code == 202 and r.json()["message"] == "speak started"
        assert (await env.http.delete(f"Call/{uuid}/Speak/")).status_code == 204
        r = await env.http.post(f"Call/{uuid}/DTMF/", json={"digits": "12w#"})
        assert r.status_code == 202 and r.json()["message"] == "digits sent"
        assert env.emu.simulator.digits_sent(uuid) == ["12w#"]
        assert_error(await env.http.post(f"Call/{uuid}/DTMF/", json={"digits": "12x"}), 400)
        assert_error(await env.http.post(f"Call/{uuid}/DTMF/", json={}), 400)
        assert_error(
            await env.http.post(f"Call/{uuid}/Play/", json={}), 400, "urls parameter is required"
        )
        assert_error(await env.http.post(f"Call/{uuid}/Play/", json={"urls": "nope"}), 400)
        assert_error(
            await env.http.post(f"Call/{uuid}/Speak/", json={}), 400, "text parameter is required"
        )
        assert_error(await env.http.post(f"Call/{uuid}/", json={"aleg_url": "http://x"}), 400)
        env.hooks.xml["/next"] = "<Response><Hangup/></Response>"
        r = await env.http.post(
            f"Call/{uuid}/", json={"legs": "aleg", "aleg_url": env.hooks.url("/next")}
        )
        assert r.status_code == 202 and r.json()["message"] == "call transferred"
        hit = await env.hooks.next("/next")
        assert hit.params["Event"] == "Transfer" and hit.params["CallUUID"] == uuid
        call = await env.emu.simulator.wait_call_ended(uuid)
        assert call.hangup_source == "Answer XML"
        for path in ("Play/", "Speak/", "DTMF/", "Record/", "Stream/", ""):
            assert_error(await env.http.post(f"Call/{uuid}/{path}", json={"urls": "http://x"}), 404)


# --- streams --------------------------------------------------------------------------------


async def test_streams_api(tmp_path: Path) -> None:
    async with ws_recorder() as ws, running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        uuid = await live_call(env)
        base = f"Call/{uuid}/Stream/"
        for body, message in (
            ({}, "service_url parameter is required"),
            ({"service_url": "http://x"}, "invalid service_url: must be a ws:// or wss:// URL"),
            (
                {"service_url": ws.url, "bidirectional": True, "audio_track": "both"},
                "audio_track must be inbound when bidirectional is true",
            ),
            ({"service_url": ws.url, "content_type": "audio/wav"}, None),
            ({"service_url": ws.url, "extra_headers": "a=b-c"}, None),
        ):
            assert_error(await env.http.post(base, json=body), 400, message)
        r = await env.http.post(
            base,
            json={
                "service_url": ws.url,
                "bidirectional": True,
                "content_type": "audio/x-mulaw;rate=8000",
                "extra_headers": "team=blue",
                "status_callback_url": env.hooks.url("/stream-status"),
            },
        )
        assert r.status_code == 201, r.text
        assert set(r.json()) == {"api_id", "message", "stream_id"}
        assert r.json()["message"] == "audio streaming started"
        stream_id = r.json()["stream_id"]
        started = await env.hooks.next_event("/stream-status", "StartStream")
        assert started.params["StreamID"] == stream_id and started.params["CallUUID"] == uuid
        dup = await env.http.post(base, json={"service_url": ws.url})
        assert_error(dup, 400, "a stream to this service_url is already active on the call")
        listing = (await env.http.get(base)).json()
        assert listing["meta"]["total_count"] == 1 and listing["meta"]["next"] is None
        obj = listing["objects"][0]
        assert obj["stream_id"] == stream_id and obj["status"] == "in-progress"
        for key in (
            "audio_track", "bidirectional", "bill_duration", "billed_amount", "call_uuid",
            "content_type", "created_at", "end_time", "plivo_auth_id", "resource_uri",
            "rounded_bill_duration", "service_url", "start_time",
        ):  # fmt: skip
            assert key in obj, key
        assert obj["bidirectional"] is True and obj["plivo_auth_id"] == env.emu.auth_id
        got = (await env.http.get(f"{base}{stream_id}/")).json()
        assert got["stream_id"] == stream_id and "api_id" in got
        assert_error(await env.http.get(f"{base}00000000-0000-0000-0000-000000000000/"), 404)
        assert (await env.http.delete(f"{base}{stream_id}/")).status_code == 204
        stopped = await env.hooks.next_event("/stream-status", "StopStream")
        assert stopped.params["StreamID"] == stream_id
        assert_error(await env.http.delete(f"{base}{stream_id}/"), 400, "No active stream found")
        assert (await env.http.get(f"{base}{stream_id}/")).json()["status"] == "stopped"
        # Two more streams, then stop all.
        for _ in range(2):
            r = await env.http.post(base, json={"service_url": ws.url + f"?n={_}"})
            assert r.status_code == 201
        assert (await env.http.delete(base)).status_code == 204
        statuses = [o["status"] for o in (await env.http.get(base)).json()["objects"]]
        assert statuses == ["stopped"] * 3
        start = ws.events("start")[0]["start"]
        assert start["callId"] == uuid and start["accountId"] == env.emu.auth_id
        assert start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000}
        assert ws.events("start")[0]["extra_headers"] == "team=blue"
        assert_error(await env.http.post("Call/nope/Stream/", json={"service_url": ws.url}), 404)


# --- recordings -----------------------------------------------------------------------------


def find_slice(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Offset at which ``needle`` sits in ``haystack`` exactly (asserts it does)."""
    probe = needle[:32]
    for i in range(len(haystack) - len(needle) + 1):
        if np.array_equal(haystack[i : i + 32], probe) and np.array_equal(
            haystack[i : i + len(needle)], needle
        ):
            return i
    raise AssertionError("recording is not a slice of the callee's audio")


async def test_record_api_recordings_list_get_delete_and_file(tmp_path: Path) -> None:
    voice = noise(3.0, seed=3)
    audio = write_wav(tmp_path / "voice.wav", voice)
    async with running(tmp_path, caller_audio=str(audio), caller_hangup_after_audio_s=-1) as env:
        uuid = await live_call(env)
        r = await env.http.post(
            f"Call/{uuid}/Record/",
            json={"file_format": "wav", "callback_url": env.hooks.url("/rec")},
        )
        assert r.status_code == 202 and r.json()["message"] == "call recording started"
        recording_id, url = r.json()["recording_id"], r.json()["url"]
        assert (
            url == f"{env.emu.base_url}/v1/Account/{env.emu.auth_id}/Recording/{recording_id}.wav"
        )
        await asyncio.sleep(0.3)  # the callee speaks for a while: that is what gets recorded
        assert (await env.http.delete(f"Call/{uuid}/Record/")).status_code == 204
        cb = await env.hooks.next("/rec")
        assert cb.params["recording_id"] == recording_id and cb.params["record_url"] == url
        assert int(cb.params["recording_duration_ms"]) >= 250
        listing = (await env.http.get("Recording/", params={"call_uuid": uuid})).json()
        assert [o["recording_id"] for o in listing["objects"]] == [recording_id]
        rec = (await env.http.get(f"Recording/{recording_id}/")).json()
        assert rec["recording_format"] == "wav" and rec["recording_type"] == "normal"
        assert re.match(r"^\d+\.00000$", rec["recording_duration_ms"])
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+05:30$", rec["add_time"])
        assert rec["resource_uri"] == f"/v1/Account/{env.emu.auth_id}/Recording/{recording_id}/"
        async with httpx.AsyncClient(timeout=TIMEOUT) as plain:
            wav = await plain.get(url)  # served without credentials, like Plivo's media URLs
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        samples, rate = sf.read(io.BytesIO(wav.content), dtype="int16")
        assert rate == 8000 and len(samples) >= 2000
        find_slice(voice, samples)  # what the callee said, sample for sample
        assert (
            await env.http.get("Recording/", params={"add_time__gt": "2000-01-01 00:00"})
        ).json()["objects"]
        assert not (await env.http.get("Recording/", params={"call_uuid": "other"})).json()[
            "objects"
        ]
        assert (await env.http.delete(f"Recording/{recording_id}/")).status_code == 204
        assert_error(await env.http.get(f"Recording/{recording_id}/"), 404)
        assert_error(await env.http.delete(f"Recording/{recording_id}/"), 404)
        async with httpx.AsyncClient(timeout=TIMEOUT) as plain:
            assert (await plain.get(url)).status_code == 404
        # mp3 is Plivo's default format.
        r = await env.http.post(f"Call/{uuid}/Record/", json={"time_limit": 1})
        assert r.json()["url"].endswith(".mp3")
        assert_error(await env.http.post(f"Call/{uuid}/Record/", json={"file_format": "ogg"}), 400)


# --- conferences ------------------------------------------------------------------------------


async def test_conferences(tmp_path: Path) -> None:
    xml = "<Response><Conference>Room 1</Conference><Hangup/></Response>"
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        a = await live_call(env, xml)
        b = await live_call(env, xml)
        await asyncio.wait_for(_members(env, "Room 1", 2), TIMEOUT)
        assert (await env.http.get("Conference/")).json()["conferences"] == ["Room 1"]
        conf = (await env.http.get("Conference/Room 1/")).json()
        assert conf["conference_member_count"] == "2"
        members = {m["call_uuid"]: m for m in conf["members"]}
        ma, mb = members[a]["member_id"], members[b]["member_id"]
        assert set(members[a]) == {
            "member_id", "muted", "deaf", "from", "to", "caller_name", "direction", "call_uuid",
            "join_time",
        }  # fmt: skip
        base = "Conference/Room 1/Member"
        r = await env.http.post(f"{base}/{ma}/Mute/")
        assert (
            r.status_code == 202 and r.json()["message"] == "muted" and r.json()["member_id"] == ma
        )
        conf = (await env.http.get("Conference/Room 1/")).json()
        assert {m["member_id"]: m["muted"] for m in conf["members"]}[ma] is True
        assert (await env.http.delete(f"{base}/{ma}/Mute/")).status_code == 204
        assert (await env.http.post(f"{base}/all/Deaf/")).json()["message"] == "deaf"
        assert (await env.http.delete(f"{base}/all/Deaf/")).status_code == 204
        r = await env.http.post(f"{base}/{ma},{mb}/Speak/", json={"text": "hi"})
        assert r.json()["message"] == "speak queued into conference"
        assert (await env.http.delete(f"{base}/{ma}/Speak/")).status_code == 204
        assert_error(await env.http.post(f"{base}/{ma}/Play/", json={}), 400)
        r = await env.http.post("Conference/Room 1/Record/", json={"file_format": "wav"})
        assert r.status_code == 202 and r.json()["message"] == "conference recording started"
        recording_id = r.json()["recording_id"]
        assert r.json()["url"].endswith(f"{recording_id}.wav")
        await asyncio.sleep(0.2)
        assert (await env.http.delete("Conference/Room 1/Record/")).status_code == 204
        rec = (await env.http.get("Recording/", params={"conference_name": "Room 1"})).json()
        assert rec["objects"][0]["recording_type"] == "conference"
        # Kicked: leaves the conference, the call goes on with its XML (a Hangup).
        r = await env.http.post(f"{base}/{ma}/Kick/")
        assert r.status_code == 202 and r.json()["message"] == "kicked"
        ended = await env.emu.simulator.wait_call_ended(a)
        assert ended.hangup_source == "Answer XML"
        assert_error(await env.http.post(f"{base}/{ma}/Mute/"), 404)
        assert (await env.http.delete(f"{base}/{mb}/")).status_code == 204
        assert (await env.emu.simulator.wait_call_ended(b)).hangup_source == "API Request"
        assert_error(await env.http.get("Conference/Room 1/"), 404)
        assert (await env.http.get("Conference/")).json()["conferences"] == []
        c = await live_call(env, xml)
        await asyncio.wait_for(_members(env, "Room 1", 1), TIMEOUT)
        assert (await env.http.delete("Conference/Room 1/")).status_code == 204
        await env.emu.simulator.wait_call_ended(c)
        assert (await env.http.delete("Conference/")).status_code == 204


async def _members(env: Env, name: str, n: int) -> None:
    while len(getattr(env.emu.store.conferences.get(name), "members", {})) < n:
        await asyncio.sleep(0.01)


# --- multiparty calls --------------------------------------------------------------------------


async def test_multiparty_calls(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        base = "MultiPartyCall/name_Sales/"
        r = await env.http.post(
            f"{base}Participant/",
            json={"role": "Agent", "from": "14155550100", "to": "14155550111"},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["message"] == "add participant action initiated"
        assert body["calls"][0]["to"] == "14155550111" and UUID_RE.match(body["request_uuid"])
        agent_call = body["calls"][0]["call_uuid"]
        await env.emu.simulator.wait_call_answered(agent_call)
        customer = await live_call(env)
        r = await env.http.post(
            f"{base}Participant/", json={"role": "customer", "call_uuid": customer}
        )
        assert r.status_code == 201
        mpc = (await env.http.get(base)).json()
        assert mpc["friendly_name"] == "Sales" and mpc["status"] == "Active"
        mpc_uuid = mpc["mpc_uuid"]
        assert (
            mpc["participants"]
            == f"/v1/Account/{env.emu.auth_id}/MultiPartyCall/uuid_{mpc_uuid}/Participant/"
        )
        assert (await env.http.get(f"MultiPartyCall/uuid_{mpc_uuid}/")).json()[
            "mpc_uuid"
        ] == mpc_uuid

        async def two() -> None:
            while len(env.emu.store.mpcs[mpc_uuid].active_participants()) < 2:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(two(), TIMEOUT)
        parts = (await env.http.get(f"{base}Participant/")).json()
        assert parts["meta"]["count"] == 2
        roles = {p["call_uuid"]: p for p in parts["objects"]}
        assert roles[agent_call]["role"] == "agent" and roles[customer]["role"] == "customer"
        member = roles[customer]["member_id"]
        r = await env.http.post(f"{base}Participant/{member}/", json={"mute": True})
        assert r.status_code == 202 and r.json()["message"] == {
            "mute": "MPC: Sales mute/unmute member(s) succeeded"
        }
        assert (await env.http.get(f"{base}Participant/{member}/")).json()["mute"] is True
        assert_error(await env.http.post(f"{base}Participant/{member}/", json={}), 400)
        r = await env.http.post(f"{base}Record/", json={"file_format": "wav"})
        assert r.status_code == 200 and r.json()["message"] == "MPC: Sales started recording"
        assert (await env.http.get(base)).json()["recording"] == "recording"
        assert (await env.http.post(f"{base}Record/Pause/")).status_code == 204
        assert (await env.http.get(base)).json()["recording"] == "paused"
        assert (await env.http.post(f"{base}Record/Resume/")).status_code == 204
        assert (await env.http.delete(f"{base}Record/")).status_code == 204
        assert_error(await env.http.delete(f"{base}Record/"), 400)
        recs = (await env.http.get("Recording/", params={"mpc_name": "Sales"})).json()["objects"]
        assert recs and recs[0]["recording_type"] == "mpc"
        r = await env.http.post(f"MultiPartyCall/uuid_{mpc_uuid}/Member/{member}/Play/",
                                json={"url": env.hooks.url("/none.wav")})  # fmt: skip
        assert r.json()["message"] == "play queued into MPC" and r.json()["mpcMemberId"] == [member]
        assert (await env.http.delete(f"{base}Participant/{member}/")).status_code == 204
        assert (await env.emu.simulator.wait_call_ended(customer)).hangup_source == "Plivo"
        listing = (await env.http.get("MultiPartyCall/", params={"status": "active"})).json()
        assert listing["meta"]["count"] == 1 and listing["objects"][0]["mpc_uuid"] == mpc_uuid
        assert (await env.http.delete(base)).status_code == 204
        ended = (await env.http.get(f"MultiPartyCall/uuid_{mpc_uuid}/")).json()
        assert ended["status"] == "Ended" and ended["termination_cause_code"] == 3000
        assert ended["termination_cause"] == "Hangup API Triggered"
        await env.emu.simulator.wait_call_ended(agent_call)
        # A new one by name, started explicitly, the way the official SDK sends it.
        r = await env.http.post(
            "MultiPartyCall/name_Later/Participant/",
            json={
                "role": "Customer",
                "from": "1415555",
                "to": "1415556",
                "start_mpc_on_enter": False,
            },
        )
        later_call = r.json()["calls"][0]["call_uuid"]
        await env.emu.simulator.wait_call_answered(later_call)
        assert (await env.http.get("MultiPartyCall/name_Later/")).json()["status"] == "Initialized"
        r = await env.http.post("MultiPartyCall/name_Later/", json={"status": ["active"]})
        assert r.status_code == 204
        assert (await env.http.get("MultiPartyCall/name_Later/")).json()["status"] == "Active"
        assert_error(await env.http.post("MultiPartyCall/name_Later/", json={"status": "x"}), 400)
        for path, body in (
            ("MultiPartyCall/Sales/", None),
            ("MultiPartyCall/name_X/Participant/", {"role": "boss", "call_uuid": "x"}),
            ("MultiPartyCall/name_X/Participant/", {"role": "agent"}),
            ("MultiPartyCall/name_X/Participant/", {"role": "agent", "call_uuid": "x", "to": "1"}),
            (
                "MultiPartyCall/name_X/Participant/",
                {"role": "customer", "from": "1415", "to": "1<2"},
            ),
        ):
            r = await (env.http.post(path, json=body) if body else env.http.get(path))
            assert_error(r, 400)
        assert_error(await env.http.get("MultiPartyCall/name_Nobody/"), 404)
        assert_error(await env.http.get("MultiPartyCall/", params={"limit": 50}), 400)


# --- endpoints and verified caller IDs ----------------------------------------------------------


async def test_endpoints(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        r = await env.http.post(
            "Endpoint/", json={"username": "zumba", "password": "hunter2", "alias": "Zumba"}
        )
        assert r.status_code == 201
        body = r.json()
        assert body["message"] == "created" and body["alias"] == "Zumba"
        assert re.match(r"^zumba\d{12}$", body["username"])
        endpoint_id = body["endpoint_id"]
        got = (await env.http.get(f"Endpoint/{endpoint_id}/")).json()
        assert got["sip_uri"] == f"sip:{body['username']}@phone.plivo.com"
        assert got["sip_registered"] == "false" and "password" not in got
        r = await env.http.post(f"Endpoint/{endpoint_id}/", json={"alias": "Z2", "app_id": "123"})
        assert r.status_code == 202 and r.json()["message"] == "changed"
        got = (await env.http.get(f"Endpoint/{endpoint_id}/")).json()
        assert got["alias"] == "Z2" and got["application"].endswith("/Application/123/")
        assert (await env.http.delete(f"Endpoint/{endpoint_id}/")).status_code == 204
        assert_error(await env.http.get(f"Endpoint/{endpoint_id}/"), 404)
        for bad in (
            {"username": "1abc", "password": "hunter2", "alias": "x"},
            {"username": "a" * 26, "password": "hunter2", "alias": "x"},
            {"username": "abc", "password": "1234", "alias": "x"},
            {"username": "abc", "password": "hunter2"},
        ):
            assert_error(await env.http.post("Endpoint/", json=bad), 400)


async def test_verified_caller_ids(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        r = await env.http.post(
            "VerifiedCallerId/",
            json={"phone_number": "+14155550123", "alias": "desk", "channel": "call"},
        )
        assert r.status_code == 201
        assert r.json()["message"] == (
            "Verification code is sent to number +14155550123 which is valid for 15 minutes"
        )
        verification = r.json()["verification_uuid"]
        path = f"VerifiedCallerId/Verification/{verification}/"
        assert_error(await env.http.post(path, json={"otp": "000000"}), 400, "invalid otp")
        r = await env.http.post(path, json={"otp": env.emu.settings.verification_otp})
        assert r.status_code == 201
        assert set(r.json()) == {
            "alias", "api_id", "channel", "country", "created_at", "phone_number",
            "verification_uuid",
        }  # fmt: skip
        assert r.json()["country"] == "US" and r.json()["channel"] == "call"
        assert_error(await env.http.post(path, json={"otp": "123456"}), 404)
        got = (await env.http.get("VerifiedCallerId/14155550123/")).json()
        assert got["alias"] == "desk" and got["phone_number"] == "+14155550123"
        r = await env.http.post("VerifiedCallerId/14155550123/", json={"alias": "front desk"})
        assert r.status_code == 200 and r.json()["alias"] == "front desk"
        listing = (await env.http.get("VerifiedCallerId/", params={"country": "US"})).json()
        assert listing["meta"]["total_count"] == 1
        assert (await env.http.delete("VerifiedCallerId/+14155550123/")).status_code == 204
        assert_error(await env.http.get("VerifiedCallerId/14155550123/"), 404)
        assert_error(await env.http.post("VerifiedCallerId/", json={}), 400)
        assert_error(
            await env.http.post(
                "VerifiedCallerId/", json={"phone_number": "1415", "channel": "fax"}
            ),
            400,
        )


@pytest.mark.parametrize(
    "path", ["Call/", "Recording/", "Endpoint/", "VerifiedCallerId/", "MultiPartyCall/"]
)
async def test_every_list_rejects_bad_limits(tmp_path: Path, path: str) -> None:
    async with running(tmp_path) as env:
        assert_error(
            await env.http.get(path, params={"limit": 21}), 400, "limit should be between 1 and 20"
        )
        assert_error(
            await env.http.get(path, params={"offset": -3}), 400, "offset should be 0 or more"
        )
