"""The emulator under a bulk request (issue 16): destinations capped, shutdown prompt."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from emulator_support import running
from test_emulator_api import assert_error

from streamserver.emulator.api.calls import MAX_DESTINATIONS


async def test_too_many_destinations_get_a_plivo_shaped_400(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        ok = {"from": "+14155550100", "answer_url": env.hooks.url("/a")}
        to = "<".join(f"1415556{i:04d}" for i in range(3000))
        r = await env.http.post("Call/", json={**ok, "to": to})
        assert_error(r, 400, f"too many destinations: at most {MAX_DESTINATIONS} per request")
        assert (await env.http.get("Call/")).json()["meta"]["total_count"] == 0


async def test_shutdown_cancels_pending_dials_at_once(tmp_path: Path) -> None:
    # Calls waiting for their CPS slot are dropped on shutdown, not dialled one by one.
    async with running(tmp_path, calls_per_second=1) as env:
        env.hooks.xml["/a"] = '<Response><Wait length="30"/></Response>'
        ok = {"from": "+14155550100", "answer_url": env.hooks.url("/a")}
        to = "<".join(f"1415556{i:04d}" for i in range(MAX_DESTINATIONS))
        first_post = time.monotonic()
        for _ in range(30):  # 3,000 calls in all, 1 per second
            r = await env.http.post("Call/", json={**ok, "to": to})
            assert r.status_code == 201 and r.json()["message"] == "calls queued"
        # Dialled one by one at 1 per second they would take 3,000 s: the bound only
        # catches that, never the machine's speed.
        async with asyncio.timeout(120):
            await env.emu.aclose()
        # None of the queued calls was dialled on the way out: all cancelled unanswered.
        calls = list(env.emu.store.calls.values())
        assert len(calls) == 30 * MAX_DESTINATIONS and all(c.ended for c in calls)
        answered = [c for c in calls if c.answer_time is not None]
        # At most what the 1-per-second CPS let through meanwhile, however slow the machine.
        assert len(answered) <= int(time.monotonic() - first_post) + 1
        assert all(c.status == "cancel" for c in calls if c.answer_time is None)
        assert len([h for h in env.hooks.hits if h.params.get("Event") == "StartApp"]) == len(
            answered
        )
        # Calls never placed get no hangup callback (3,000 of them swamped the way out).
        hangups = [h for h in env.hooks.hits if h.params.get("Event") == "Hangup"]
        assert len(hangups) <= len(answered)
