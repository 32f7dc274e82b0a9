"""The official ``plivo`` Python SDK, unchanged, against the emulator (its base URL patched).

The SDK is synchronous (requests), so each call runs in a worker thread while the emulator
serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import plivo
import plivo.rest.client
import pytest
from emulator_support import TIMEOUT, running, ws_recorder
from plivo import exceptions

T = TypeVar("T")
HOLD = '<Response><Wait length="30"/></Response>'


async def sdk(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), TIMEOUT)


def point_sdk_at(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    """What a user does to aim the SDK at the emulator: patch its base-URI constants."""
    root = f"{base_url}/v1/Account"
    for name in (
        "PLIVO_API_BASE_URI",
        "API_VOICE_BASE_URI",
        "API_VOICE_BASE_URI_FALLBACK_1",
        "API_VOICE_BASE_URI_FALLBACK_2",
    ):
        monkeypatch.setattr(plivo.rest.client, name, root)


async def test_sdk_calls_streams_recordings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ws_recorder() as ws, running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        point_sdk_at(monkeypatch, env.emu.base_url)
        client = plivo.RestClient(env.emu.auth_id, env.emu.auth_token)
        env.hooks.xml["/answer"] = HOLD
        made = await sdk(
            client.calls.create,
            from_="+14155550100",
            to_="14155550199",
            answer_url=env.hooks.url("/answer"),
            hangup_url=env.hooks.url("/hangup"),
        )
        assert made.message == "call fired"
        uuid = made.request_uuid
        await env.emu.simulator.wait_call_answered(uuid)
        assert uuid in (await sdk(client.live_calls.list_ids)).calls
        live = await sdk(client.live_calls.get, uuid)
        assert live.call_status == "in-progress" and live.to == "14155550199"

        started = await sdk(
            client.calls.start_stream,
            uuid,
            ws.url,
            bidirectional=True,
            content_type="audio/x-mulaw;rate=8000",
            extra_headers="agent=42",
        )
        assert started.message == "audio streaming started"
        streams = await sdk(client.calls.get_all_streams, uuid)
        assert [s.stream_id for s in streams.objects] == [started.stream_id]
        one = await sdk(client.calls.get_details_of_specific_stream, uuid, started.stream_id)
        assert one.service_url == ws.url and one.call_uuid == uuid
        assert await sdk(client.calls.delete_specific_stream, uuid, started.stream_id) is None
        with pytest.raises(exceptions.ValidationError, match="No active stream found"):
            await sdk(client.calls.delete_specific_stream, uuid, started.stream_id)
        await sdk(client.calls.start_stream, uuid, ws.url)
        await sdk(client.calls.delete_all_streams, uuid)

        await sdk(client.calls.play, uuid, env.hooks.url("/prompt.wav"))
        await sdk(client.calls.stop_playing, uuid)
        await sdk(client.calls.speak, uuid, "Hello from the SDK")
        await sdk(client.calls.send_digits, uuid, "1234")
        assert env.emu.simulator.digits_sent(uuid) == ["1234"]

        rec = await sdk(client.calls.record, uuid, file_format="wav")
        assert rec.message == "call recording started" and rec.url.endswith(".wav")
        await asyncio.sleep(0.2)  # some speech to record
        await sdk(client.calls.record_stop, uuid)
        recordings = await sdk(client.recordings.list, call_uuid=uuid)
        assert [r.recording_id for r in recordings] == [rec.recording_id]
        got = await sdk(client.recordings.get, rec.recording_id)
        assert got.recording_url == rec.url and got.recording_format == "wav"

        assert await sdk(client.calls.delete, uuid) is None
        with pytest.raises(exceptions.ResourceNotFoundError):
            await sdk(client.calls.delete, uuid)
        cdr = await sdk(client.calls.get, uuid)
        assert cdr.call_uuid == uuid and cdr.hangup_source == "API Request"
        assert [c.call_uuid for c in await sdk(client.calls.list)] == [uuid]
        await sdk(client.recordings.delete, rec.recording_id)
        with pytest.raises(exceptions.ResourceNotFoundError):
            await sdk(client.recordings.get, rec.recording_id)
        with pytest.raises(exceptions.ValidationError):
            await sdk(
                client.calls.create, from_="1415", to_="1416", answer_url="http://x", time_limit="x"
            )
        bad = plivo.RestClient(env.emu.auth_id, "not-the-token")
        # (Not a list call: the SDK itself crashes reading a 401 body as a list response.)
        with pytest.raises(exceptions.AuthenticationError, match="authentication failed"):
            await sdk(bad.calls.get, uuid)


async def test_sdk_conferences_endpoints_mpc_caller_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        point_sdk_at(monkeypatch, env.emu.base_url)
        client = plivo.RestClient(env.emu.auth_id, env.emu.auth_token)
        env.hooks.xml["/conf"] = "<Response><Conference>Standup</Conference></Response>"
        for to in ("14155550101", "14155550102"):
            await sdk(
                client.calls.create, from_="14155550100", to_=to, answer_url=env.hooks.url("/conf")
            )

        async def two_members() -> None:
            while len(getattr(env.emu.store.conferences.get("Standup"), "members", {})) < 2:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(two_members(), TIMEOUT)
        assert (await sdk(client.conferences.list)).conferences == ["Standup"]
        conf = await sdk(client.conferences.get, "Standup")
        assert conf.conference_member_count == "2"
        member = conf.members[0].member_id
        assert (await sdk(client.conferences.member_mute, "Standup", member)).message == "muted"
        await sdk(client.conferences.member_mute_stop, "Standup", member)
        started = await sdk(client.conferences.record, "Standup", file_format="wav")
        assert started.message == "conference recording started"
        await sdk(client.conferences.record_stop, "Standup")
        assert await sdk(client.conferences.hangup, "Standup") is None
        with pytest.raises(exceptions.ResourceNotFoundError):
            await sdk(client.conferences.get, "Standup")

        created = await sdk(
            client.endpoints.create, username="desk", password="s3cret", alias="Desk"
        )
        assert created.message == "created" and created.username.startswith("desk")
        endpoints = await sdk(client.endpoints.list)
        assert [e.endpoint_id for e in endpoints] == [created.endpoint_id]
        assert (
            await sdk(client.endpoints.update, created.endpoint_id, alias="Desk 2")
        ).message == "changed"
        assert (await sdk(client.endpoints.get, created.endpoint_id)).alias == "Desk 2"
        await sdk(client.endpoints.delete, created.endpoint_id)

        added = await sdk(
            client.multi_party_calls.add_participant,
            role="agent",
            friendly_name="Team",
            from_="14155550100",
            to_="14155550123",
        )
        assert added.message == "add participant action initiated"
        await env.emu.simulator.wait_call_answered(added.calls[0].call_uuid)
        mpc = await sdk(client.multi_party_calls.get, friendly_name="Team")
        assert mpc.status == "Active" and mpc.friendly_name == "Team"
        listed = await sdk(client.multi_party_calls.list, status="active")
        assert [m.mpc_uuid for m in listed.objects] == [mpc.mpc_uuid]
        parts = await sdk(client.multi_party_calls.list_participants, friendly_name="Team")
        assert parts.objects[0].role == "agent"
        await sdk(client.multi_party_calls.start, friendly_name="Team")
        await sdk(client.multi_party_calls.stop, friendly_name="Team")
        assert (await sdk(client.multi_party_calls.get, uuid=mpc.mpc_uuid)).status == "Ended"

        sent = await sdk(
            client.verify_callerids.initiate_verify,
            phone_number="14155550150",
            alias="Lab",
            channel="sms",
        )
        assert "valid for 15 minutes" in sent.message
        verified = await sdk(
            client.verify_callerids.verify_caller_id,
            sent.verification_uuid,
            otp=env.emu.settings.verification_otp,
        )
        assert verified.phone_number == "14155550150" and verified.alias == "Lab"
        await sdk(client.verify_callerids.update_verified_caller_id, "14155550150", alias="Lab 2")
        got = await sdk(client.verify_callerids.get_verified_caller_id, "14155550150")
        assert got.alias == "Lab 2"
        listing = await sdk(client.verify_callerids.list_verified_caller_id)
        assert listing.meta.total_count == 1
        await sdk(client.verify_callerids.delete_verified_caller_id, "14155550150")
        with pytest.raises(exceptions.ResourceNotFoundError):
            await sdk(client.verify_callerids.get_verified_caller_id, "14155550150")
