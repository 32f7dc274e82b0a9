"""streamserver.rest against the real local emulator over HTTP: every resource, the
documented errors, retries and pagination, both clients. Only the retry sleep is injected."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from emulator_support import TIMEOUT, Env, noise, running, write_wav, ws_recorder

from streamserver.rest import (
    AsyncPlivoClient,
    AuthenticationError,
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PlivoClient,
    PlivoTransportError,
    RateLimitError,
    RetryPolicy,
)
from streamserver.rest._request import Request, none
from streamserver.rest.xml import Hangup, Response, Wait

HOLD = Response(Wait(length=30)).to_xml()  # keeps a call up until it is hung up
CONFERENCE = "<Response><Conference>Room 1</Conference><Hangup/></Response>"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FROM, TO = "14155550100", "14155550199"


@contextlib.asynccontextmanager
async def plivo(env: Env, **kw: Any) -> AsyncIterator[AsyncPlivoClient]:
    async with AsyncPlivoClient(
        env.emu.auth_id, env.emu.auth_token, base_url=env.emu.base_url, timeout_s=TIMEOUT, **kw
    ) as client:
        yield client


async def live_call(env: Env, c: AsyncPlivoClient, xml: str = HOLD, to: str = TO) -> str:
    env.hooks.xml["/answer"] = xml
    made = await c.calls.make(
        FROM, to, env.hooks.url("/answer"), hangup_url=env.hooks.url("/hangup")
    )
    assert made.message == "call fired" and isinstance(made.request_uuid, str)
    await env.emu.simulator.wait_call_answered(made.request_uuid)
    return made.request_uuid


def wav_bytes(seconds: float = 0.2) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, noise(seconds), 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


async def until(predicate: Any) -> None:
    """Poll a condition of the emulator's state (bounded by TIMEOUT)."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT)


async def test_calls(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env, plivo(env) as c:
        env.hooks.files["/beep.wav"] = wav_bytes()
        uuid = await live_call(env, c)
        assert (await c.calls.list_live()).calls == [uuid]
        live = await c.calls.get_live(uuid)
        assert (live.call_status, live.call_uuid, live.to_number) == ("in-progress", uuid, TO)
        assert UUID_RE.match(live.api_id or "")
        # Live actions.
        played = await c.calls.play(uuid, env.hooks.url("/beep.wav"))
        assert played.message == "play started"
        await env.hooks.next("/beep.wav")
        assert await c.calls.stop_play(uuid) is None
        assert (await c.calls.speak(uuid, "Hello there")).message == "speak started"
        assert await c.calls.stop_speak(uuid) is None
        assert (await c.calls.send_digits(uuid, "12w#")).message == "digits sent"
        assert env.emu.simulator.digits_sent(uuid) == ["12w#"]
        rec = await c.calls.record(uuid, file_format="wav")
        assert rec.message == "call recording started" and rec.url and rec.url.endswith(".wav")
        assert await c.calls.stop_record(uuid) is None
        # Errors the API documents, with the API's own words.
        with pytest.raises(BadRequestError) as bad:
            await c.calls.send_digits(uuid, "12x")
        assert bad.value.status_code == 400 and UUID_RE.match(bad.value.api_id or "")
        assert "invalid digits" in bad.value.error
        with pytest.raises(NotFoundError):
            await c.calls.get(uuid)  # no CDR while the call is up
        # Hang up; a second hang-up is a 404.
        assert await c.calls.hangup(uuid) is None
        with pytest.raises(NotFoundError) as gone:
            await c.calls.hangup(uuid)
        assert gone.value.method == "DELETE" and gone.value.url.endswith(f"/Call/{uuid}/")
        with pytest.raises(NotFoundError):
            await c.calls.get_live(uuid)
        cdr = await c.calls.get(uuid)
        assert (cdr.hangup_source, cdr.hangup_cause_code) == ("API Request", 4000)
        assert cdr.total_rate == Decimal("0.00850") and cdr.to_number == TO
        assert cdr.raw["resource_uri"] == f"/v1/Account/{env.emu.auth_id}/Call/{uuid}/"
        page = await c.calls.list(to_number="+" + TO, call_direction="outbound")
        assert [o.call_uuid for o in page.objects] == [uuid] and page.meta.total == 1
        assert (await c.calls.list(hangup_cause_code=4010)).objects == []
        with pytest.raises(BadRequestError):
            await c.calls.list(end_time__gt="yesterday")
        # Transfer a second call to XML that hangs up.
        other = await live_call(env, c)
        env.hooks.xml["/next"] = Response(Hangup()).to_xml()
        moved = await c.calls.transfer(other, legs="aleg", aleg_url=env.hooks.url("/next"))
        assert moved.message == "call transferred"
        assert (await env.emu.simulator.wait_call_ended(other)).hangup_source == "Answer XML"
        assert {cdr.call_uuid async for cdr in c.calls.iter(limit=1)} == {uuid, other}


async def test_queued_calls_and_cancel(tmp_path: Path) -> None:
    async with running(tmp_path, calls_per_second=1, caller_hangup_after_audio_s=-1) as env:
        async with plivo(env) as c:
            env.hooks.xml["/answer"] = HOLD
            first = await c.calls.make(FROM, TO, env.hooks.url("/answer"))
            second = await c.calls.make(FROM, "14155550198", env.hooks.url("/answer"))
            assert (first.message, second.message) == ("call fired", "call queued")
            assert isinstance(second.request_uuid, str)
            assert (await c.calls.list_queued()).calls == [second.request_uuid]
            queued = await c.calls.get_queued(second.request_uuid)
            assert queued.call_status == "queued"
            assert await c.calls.cancel(second.request_uuid) is None
            with pytest.raises(NotFoundError):
                await c.calls.cancel(second.request_uuid)
            cdr = await c.calls.get(second.request_uuid)
            assert (cdr.hangup_cause_name, cdr.hangup_cause_code) == ("Canceled", 1000)


async def test_streams(tmp_path: Path) -> None:
    async with ws_recorder() as ws, running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        async with plivo(env) as c:
            uuid = await live_call(env, c)
            started = await c.streams.start(
                uuid,
                ws.url,
                bidirectional=True,
                audio_track="inbound",
                content_type="audio/x-mulaw;rate=8000",
                extra_headers={"team": "blue"},
                stream_timeout=600,
                status_callback_url=env.hooks.url("/stream-status"),
                status_callback_method="POST",
            )
            assert started.message == "audio streaming started" and started.stream_id
            hit = await env.hooks.next_event("/stream-status", "StartStream")
            assert hit.params["StreamID"] == started.stream_id
            with pytest.raises(BadRequestError) as dup:
                await c.streams.start(uuid, ws.url)
            assert dup.value.error == "a stream to this service_url is already active on the call"
            page = await c.streams.list(uuid)
            assert page.meta.total == 1
            (stream,) = page.objects
            assert stream.stream_id == started.stream_id and stream.bidirectional is True
            assert stream.status == "in-progress" and stream.plivo_auth_id == env.emu.auth_id
            got = await c.streams.get(uuid, started.stream_id)
            assert got.content_type == "audio/x-mulaw;rate=8000"
            assert await c.streams.stop(uuid, started.stream_id) is None
            with pytest.raises(BadRequestError) as stopped:
                await c.streams.stop(uuid, started.stream_id)
            assert stopped.value.error == "No active stream found"
            for n in range(2):
                await c.streams.start(uuid, f"{ws.url}?n={n}")
            assert await c.streams.stop_all(uuid) is None
            assert [s.status for s in (await c.streams.list(uuid)).objects] == ["stopped"] * 3
            assert ws.events("start")[0]["extra_headers"] == "team=blue"
            with pytest.raises(NotFoundError):
                await c.streams.get(uuid, "00000000-0000-0000-0000-000000000000")


async def test_recordings_list_get_download_delete(tmp_path: Path) -> None:
    audio = write_wav(tmp_path / "voice.wav", noise(1.0, seed=3))
    async with running(tmp_path, caller_audio=str(audio), caller_hangup_after_audio_s=-1) as env:
        async with plivo(env) as c:
            uuid = await live_call(env, c)
            started = await c.calls.record(
                uuid, file_format="wav", callback_url=env.hooks.url("/rec")
            )
            await c.calls.stop_record(uuid)
            done = await env.hooks.next("/rec")  # the file is complete once this arrives
            assert started.recording_id and done.params["recording_id"] == started.recording_id
            page = await c.recordings.list(call_uuid=uuid, add_time__gt="2000-01-01 00:00")
            assert [r.recording_id for r in page.objects] == [started.recording_id]
            assert [r.recording_id async for r in c.recordings.iter(call_uuid=uuid)] == [
                started.recording_id
            ]
            rec = await c.recordings.get(started.recording_id)
            assert rec.recording_format == "wav" and rec.recording_type == "normal"
            assert isinstance(rec.recording_duration_ms, float) and rec.recording_url == started.url
            async with httpx.AsyncClient(timeout=TIMEOUT) as plain:
                served = (await plain.get(rec.recording_url or "")).content
            by_id = await c.recordings.download(started.recording_id, tmp_path / "by-id.wav")
            by_obj = await c.recordings.download(rec, tmp_path / "by-obj.wav", chunk_size=512)
            assert by_id.read_bytes() == served == by_obj.read_bytes()
            _, rate = sf.read(str(by_id), dtype="int16")
            assert rate == 8000
            assert not list(tmp_path.glob(".*.part"))
            assert await c.recordings.delete(started.recording_id) is None
            for gone in (
                c.recordings.get(started.recording_id),
                c.recordings.delete(started.recording_id),
                c.recordings.download(rec, tmp_path / "gone.wav"),
            ):
                with pytest.raises(NotFoundError):
                    await gone
            assert not (tmp_path / "gone.wav").exists()


async def test_conferences(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env, plivo(env) as c:
        env.hooks.files["/beep.wav"] = wav_bytes()
        a = await live_call(env, c, CONFERENCE)
        b = await live_call(env, c, CONFERENCE)
        store = env.emu.store
        await until(lambda: len(getattr(store.conferences.get("Room 1"), "members", {})) == 2)
        assert (await c.conferences.list()).conferences == ["Room 1"]
        conf = await c.conferences.get("Room 1")
        assert conf.conference_name == "Room 1" and conf.conference_member_count == 2
        members = {m.call_uuid: m for m in conf.members}
        ma, mb = members[a].member_id, members[b].member_id
        assert ma and mb and members[a].raw["call_uuid"] == a
        assert (await c.conferences.member_mute("Room 1", ma)).message == "muted"
        muted = {m.member_id: m.muted for m in (await c.conferences.get("Room 1")).members}
        assert muted == {ma: True, mb: False}
        assert await c.conferences.member_unmute("Room 1", ma) is None
        assert (await c.conferences.member_deaf("Room 1", "all")).message == "deaf"
        assert await c.conferences.member_undeaf("Room 1", "all") is None
        spoke = await c.conferences.member_speak("Room 1", [ma, mb], "hi")
        assert spoke.message == "speak queued into conference"
        assert await c.conferences.member_stop_speak("Room 1", ma) is None
        await c.conferences.member_play("Room 1", mb, env.hooks.url("/beep.wav"))
        assert await c.conferences.member_stop_play("Room 1", mb) is None
        rec = await c.conferences.record("Room 1", file_format="wav")
        assert rec.message == "conference recording started" and rec.url
        assert rec.url.endswith(f"{rec.recording_id}.wav")
        assert await c.conferences.stop_record("Room 1") is None
        assert (await c.conferences.member_kick("Room 1", ma)).message == "kicked"
        assert (await env.emu.simulator.wait_call_ended(a)).hangup_source == "Answer XML"
        with pytest.raises(NotFoundError):
            await c.conferences.member_mute("Room 1", ma)
        assert await c.conferences.member_hangup("Room 1", mb) is None
        assert (await env.emu.simulator.wait_call_ended(b)).hangup_source == "API Request"
        with pytest.raises(NotFoundError):
            await c.conferences.get("Room 1")
        third = await live_call(env, c, CONFERENCE)
        await until(lambda: "Room 1" in store.conferences)
        assert await c.conferences.hangup("Room 1") is None
        await env.emu.simulator.wait_call_ended(third)
        assert await c.conferences.hangup_all() is None


async def test_multiparty_calls(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env, plivo(env) as c:
        added = await c.multiparty_calls.add_participant(
            "Agent", friendly_name="Sales", from_=FROM, to="14155550111"
        )
        assert added.message == "add participant action initiated"
        agent_call = added.calls[0]["call_uuid"]
        await env.emu.simulator.wait_call_answered(agent_call)
        customer = await live_call(env, c)
        await c.multiparty_calls.add_participant(
            "Customer", friendly_name="Sales", call_uuid=customer
        )
        mpc = await c.multiparty_calls.get(friendly_name="Sales")
        assert mpc.status == "Active" and mpc.mpc_uuid
        mpc_uuid = mpc.mpc_uuid
        assert (await c.multiparty_calls.get(uuid=mpc_uuid)).friendly_name == "Sales"
        await until(lambda: len(env.emu.store.mpcs[mpc_uuid].active_participants()) == 2)
        parts = await c.multiparty_calls.list_participants(friendly_name="Sales")
        assert parts.meta.total == 2
        roles = {p.call_uuid: p for p in parts.objects}
        assert roles[agent_call].role == "agent"
        member = roles[customer].member_id
        assert member is not None
        updated = await c.multiparty_calls.update_participant(
            member, friendly_name="Sales", mute=True
        )
        assert updated.mute and updated.mute.startswith("MPC: Sales")
        got = await c.multiparty_calls.get_participant(member, uuid=mpc_uuid)
        assert got.mute is True and got.call_uuid == customer
        rec = await c.multiparty_calls.record_start(friendly_name="Sales", file_format="wav")
        assert rec.recording_id
        assert await c.multiparty_calls.record_pause(friendly_name="Sales") is None
        assert await c.multiparty_calls.record_resume(friendly_name="Sales") is None
        assert await c.multiparty_calls.record_stop(friendly_name="Sales") is None
        with pytest.raises(BadRequestError):
            await c.multiparty_calls.record_stop(friendly_name="Sales")
        assert await c.multiparty_calls.kick_participant(member, friendly_name="Sales") is None
        assert (await env.emu.simulator.wait_call_ended(customer)).hangup_source == "Plivo"
        active = await c.multiparty_calls.list(status="active")
        assert active.meta.total == 1 and active.objects[0].mpc_uuid == mpc_uuid
        assert [m.mpc_uuid async for m in c.multiparty_calls.iter()] == [mpc_uuid]
        assert await c.multiparty_calls.end(friendly_name="Sales") is None
        ended = await c.multiparty_calls.get(uuid=mpc_uuid)
        assert (ended.status, ended.termination_cause_code) == ("Ended", 3000)
        await env.emu.simulator.wait_call_ended(agent_call)
        # One that waits for an explicit start.
        later = await c.multiparty_calls.add_participant(
            "Customer", friendly_name="Later", from_=FROM, to="1415556", start_mpc_on_enter=False
        )
        await env.emu.simulator.wait_call_answered(later.calls[0]["call_uuid"])
        assert (await c.multiparty_calls.get(friendly_name="Later")).status == "Initialized"
        assert await c.multiparty_calls.start(friendly_name="Later") is None
        assert (await c.multiparty_calls.get(friendly_name="Later")).status == "Active"
        with pytest.raises(NotFoundError):
            await c.multiparty_calls.get(friendly_name="Nobody")


async def test_endpoints_and_pagination(tmp_path: Path) -> None:
    async with running(tmp_path) as env, plivo(env) as c:
        created = await c.endpoints.create("zumba", "hunter2", "Zumba")
        assert created.message == "created" and re.match(r"^zumba\d{12}$", created.username or "")
        assert created.endpoint_id
        got = await c.endpoints.get(created.endpoint_id)
        assert (
            got.sip_registered is False and got.sip_uri == f"sip:{created.username}@phone.plivo.com"
        )
        assert (
            await c.endpoints.update(created.endpoint_id, alias="Z2", app_id="123")
        ).message == "changed"
        got = await c.endpoints.get(created.endpoint_id)
        assert got.alias == "Z2" and (got.application or "").endswith("/Application/123/")
        for i in range(4):
            await c.endpoints.create(f"user{i}", "secret", f"a{i}")
        first = await c.endpoints.list(limit=2)
        assert first.meta.total == 5 and first.meta.next and len(first.objects) == 2
        everyone = [e.endpoint_id async for e in c.endpoints.iter(limit=2)]
        assert len(everyone) == 5 and len(set(everyone)) == 5
        assert await c.endpoints.delete(created.endpoint_id) is None
        with pytest.raises(NotFoundError):
            await c.endpoints.get(created.endpoint_id)


async def test_verified_caller_ids(tmp_path: Path) -> None:
    async with running(tmp_path) as env, plivo(env) as c:
        started = await c.verified_caller_ids.initiate("+14155550123", alias="desk", channel="call")
        assert started.verification_uuid and "valid for 15 minutes" in (started.message or "")
        with pytest.raises(BadRequestError) as wrong:
            await c.verified_caller_ids.verify(started.verification_uuid, "000000")
        assert wrong.value.error == "invalid otp"
        verified = await c.verified_caller_ids.verify(
            started.verification_uuid, env.emu.settings.verification_otp
        )
        assert (verified.phone_number, verified.country, verified.channel) == (
            "+14155550123",
            "US",
            "call",
        )
        assert (await c.verified_caller_ids.get("+14155550123")).alias == "desk"
        updated = await c.verified_caller_ids.update("14155550123", alias="front desk")
        assert updated.alias == "front desk"
        listing = await c.verified_caller_ids.list(country="US")
        assert listing.meta.total == 1
        assert [v.phone_number async for v in c.verified_caller_ids.iter()] == ["+14155550123"]
        assert await c.verified_caller_ids.delete("+14155550123") is None
        with pytest.raises(NotFoundError):
            await c.verified_caller_ids.get("+14155550123")


async def test_documented_errors_and_retries(tmp_path: Path) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async with running(tmp_path, rate_limit_requests=3, rate_limit_window_s=60) as env:
        async with AsyncPlivoClient(
            env.emu.auth_id, "wrong-token", base_url=env.emu.base_url, timeout_s=TIMEOUT
        ) as bad:
            with pytest.raises(AuthenticationError) as auth:
                await bad.calls.list()
        assert auth.value.status_code == 401 and auth.value.error == "authentication failed"
        async with plivo(env, sleep=fake_sleep, retry=RetryPolicy(max_retries=2)) as c:
            with pytest.raises(MethodNotAllowedError) as not_allowed:
                await c._execute(Request("DELETE", "Recording/", none, idempotent=False))
            assert not_allowed.value.status_code == 405
            await c.recordings.list()
            await c.endpoints.list()
            # Over the emulator's budget: 429 with Retry-After, honoured (the sleep is
            # injected), retried twice, then raised with the server's hint.
            with pytest.raises(RateLimitError) as limited:
                await c.calls.list()
            retry_after = limited.value.retry_after
            assert retry_after is not None and 1 <= retry_after <= 60
            assert len(slept) == 2 and all(1 <= s <= 60 for s in slept)
            # Making calls is not counted against the budget.
            env.hooks.xml["/answer"] = "<Response/>"
            made = await c.calls.make(FROM, TO, env.hooks.url("/answer"))
            assert made.message == "call fired"


async def test_transport_errors_against_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async with AsyncPlivoClient(
        "MAXXXXXXXXXXXXXXXXXX", "token", base_url=f"http://127.0.0.1:{port}/", sleep=fake_sleep
    ) as c:
        with pytest.raises(PlivoTransportError) as info:
            await c.calls.list()
        assert isinstance(info.value.__cause__, httpx.ConnectError) and len(slept) == 3
        slept.clear()
        with pytest.raises(PlivoTransportError):
            await c.calls.make(FROM, TO, "https://app.test/answer")
        assert slept == []  # never repeated: it might have dialled


async def test_sync_client_against_the_emulator(tmp_path: Path) -> None:
    """The blocking client, run in a worker thread while the emulator serves on this loop."""
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        env.hooks.xml["/answer"] = HOLD

        def scenario() -> tuple[str, list[str]]:
            with PlivoClient(
                env.emu.auth_id, env.emu.auth_token, base_url=env.emu.base_url, timeout_s=TIMEOUT
            ) as c:
                made = c.calls.make(FROM, TO, env.hooks.url("/answer"))
                assert isinstance(made.request_uuid, str)
                for i in range(3):
                    c.endpoints.create(f"sync{i}", "secret", f"s{i}")
                names = sorted(e.alias or "" for e in c.endpoints.iter(limit=1))
                return made.request_uuid, names

        uuid, names = await asyncio.to_thread(scenario)
        assert names == ["s0", "s1", "s2"]
        await env.emu.simulator.wait_call_answered(uuid)

        def hang_up() -> None:
            with PlivoClient(env.emu.auth_id, env.emu.auth_token, base_url=env.emu.base_url) as c:
                assert c.calls.list_live().calls == [uuid]
                c.calls.hangup(uuid)
                with pytest.raises(NotFoundError):
                    c.calls.hangup(uuid)

        await asyncio.to_thread(hang_up)
        assert (await env.emu.simulator.wait_call_ended(uuid)).hangup_source == "API Request"
