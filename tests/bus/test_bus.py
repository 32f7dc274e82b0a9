"""streamserver.bus against a real nats-server with JetStream on loopback."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import bus_support
import msgspec
import numpy as np
import pytest
from bus_support import NatsServer, find_binary

from streamserver.bus import (
    Bus,
    BusClient,
    BusSettings,
    BusUnavailableError,
    CallEvent,
    CallNotFoundError,
    CommandError,
    decode_wav,
    encode_wav,
    event_subject,
    subject_token,
)
from streamserver.commands import bus as bus_cli

# The real server for this module (a fixture of bus_support).
nats_server = bus_support.nats_server

T = 10.0  # base timeout unit (s)


# -- pure parts ------------------------------------------------------------------------------


def test_subjects() -> None:
    assert subject_token("2b3c-AA_9") == "2b3c-AA_9"
    assert subject_token("a.b c*>") == "a_b_c__"
    assert subject_token("") == "_"
    assert event_subject("ss", "call.1", "stream.started") == "ss.events.call_1.stream.started"


def test_settings_from_table() -> None:
    s = BusSettings.from_table({"url": "nats://h:4222", "backlog": 5, "ack_timeout_s": 1})
    assert (s.url, s.backlog, s.ack_timeout_s, s.prefix) == (
        "nats://h:4222",
        5,
        1.0,
        "streamserver",
    )
    with pytest.raises(ValueError, match=r"\[bus\] .*unknown field `nope`"):
        BusSettings.from_table({"nope": 1})
    with pytest.raises(ValueError, match="nats://"):
        BusSettings.from_table({"url": "http://h"})
    with pytest.raises(ValueError, match="backlog"):
        BusSettings.from_table({"backlog": 0})


def test_wav_round_trip() -> None:
    pcm = (np.arange(800, dtype=np.int16) * 37).astype(np.int16)
    out, rate = decode_wav(encode_wav(pcm, 16000))
    assert rate == 16000 and np.array_equal(out, pcm)
    with pytest.raises(ValueError, match="WAV"):
        decode_wav(b"not a wav")


# -- helpers ---------------------------------------------------------------------------------


def settings(server: NatsServer, **kw: Any) -> BusSettings:
    """Settings with a prefix and stream of their own, so tests never see each other."""
    tag = uuid.uuid4().hex[:8]
    base: dict[str, Any] = {
        "url": server.url,
        "prefix": f"t{tag}",
        "stream": f"EV_{tag}",
        "reconnect_wait_s": 0.1,
        "ack_timeout_s": 2.0,
        "host": "host-a",
        "worker": "1",
    }
    base.update(kw)
    return BusSettings(**base)


def client_for(s: BusSettings) -> BusClient:
    return BusClient(s.url, prefix=s.prefix, stream=s.stream, timeout_s=T)


async def read_events(
    s: BusSettings, n: int, call_id: str | None = None, timeout_s: float = T
) -> list[CallEvent]:
    async with client_for(s) as client:
        out: list[CallEvent] = []

        async def take() -> None:
            async for ev in client.events(call_id):
                out.append(ev)
                if len(out) == n:
                    return

        await asyncio.wait_for(take(), timeout_s)
        return out


async def wait_for(cond: Any, timeout_s: float = T) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Target:
    """A stand-in for the session: records what the commands asked for."""

    def __init__(self) -> None:
        self.played: list[tuple[np.ndarray, int]] = []
        self.dtmf: list[str] = []
        self.cleared = 0
        self.stopped = 0
        self.checkpoints: dict[str, asyncio.Future[bool]] = {}
        self.fail_play: Exception | None = None

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        if self.fail_play is not None:
            raise self.fail_play
        self.played.append((pcm, rate))

    def checkpoint(self, name: str) -> Awaitable[bool]:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.checkpoints[name] = fut
        return fut

    def clear(self) -> None:
        self.cleared += 1
        for fut in self.checkpoints.values():
            if not fut.done():
                fut.set_result(False)

    def send_dtmf(self, digits: str) -> None:
        self.dtmf.append(digits)

    async def stop(self) -> None:
        self.stopped += 1


@pytest.fixture
async def bus_a(nats_server: NatsServer) -> AsyncIterator[Bus]:
    bus = Bus(settings(nats_server))
    await bus.start()
    assert await bus.connection.wait_connected(T)
    yield bus
    await bus.aclose()


# -- events ----------------------------------------------------------------------------------


async def test_events_reach_a_late_consumer_in_order(bus_a: Bus) -> None:
    pub = bus_a.events
    calls = ["call-1", "call-2", "call.3"]
    for i in range(40):
        for c in calls:
            assert pub.publish(c, "stream.tick", {"n": i}, stream_id=f"s-{c}", provider="plivo")
    assert await pub.wait_sent(T)
    assert pub.stats() == {"published": 120, "dropped": 0, "failed": 0, "backlog": 0}

    # The consumer starts after everything was published, and still reads all of it.
    evs = await read_events(bus_a.settings, 120)
    for c in calls:
        mine = [e for e in evs if e.call_id == c]
        assert [e.data["n"] for e in mine] == list(range(40))
        assert all(e.stream_id == f"s-{c}" and e.provider == "plivo" for e in mine)
    first = evs[0]
    assert (first.kind, first.host, first.worker) == ("stream.tick", "host-a", "1")
    assert abs(first.time - time.time()) < 60 and first.id and first.seq == 1
    assert [e.seq for e in evs] == sorted(e.seq for e in evs)

    # One call only: the filter is on the subject, the exact id checked in the body.
    only = await read_events(bus_a.settings, 40, call_id="call.3")
    assert {e.call_id for e in only} == {"call.3"}
    assert [e.data["n"] for e in only] == list(range(40))

    # Resuming after the last sequence seen: only what came after it.
    async with client_for(bus_a.settings) as client:
        tail = []
        async for ev in client.events(from_seq=evs[-3].seq):
            tail.append(ev)
            if len(tail) == 3:
                break
    assert [e.id for e in tail] == [e.id for e in evs[-3:]]


# -- commands --------------------------------------------------------------------------------


async def test_commands_reach_the_server_holding_the_call(
    nats_server: NatsServer,
) -> None:
    s_a = settings(nats_server, host="host-a")
    s_b = msgspec.structs.replace(s_a, host="host-b")
    bus_a, bus_b = Bus(s_a), Bus(s_b)
    await bus_a.start()
    await bus_b.start()
    ta, tb = Target(), Target()
    try:
        assert await bus_a.connection.wait_connected(T)
        assert await bus_b.connection.wait_connected(T)
        await bus_a.commands.add("call-a", ta)
        await bus_b.commands.add("call-b", tb)
        await bus_a.connection.nc.flush()
        await bus_b.connection.nc.flush()
        async with client_for(s_a) as client:
            pcm = (np.sin(np.arange(1600) / 5) * 8000).astype(np.int16)
            reply = await client.play("call-a", pcm, 8000)
            assert (reply["host"], reply["samples"], reply["rate"]) == ("host-a", 1600, 8000)
            assert len(ta.played) == 1 and not tb.played
            assert np.array_equal(ta.played[0][0], pcm) and ta.played[0][1] == 8000

            await client.send_dtmf("call-b", "12#")
            assert tb.dtmf == ["12#"] and not ta.dtmf

            # A checkpoint waits for its audio, and does not hold up the clear after it.
            waiting = asyncio.create_task(client.checkpoint("call-b", "mark-1"))
            await wait_for(lambda: "mark-1" in tb.checkpoints)
            await client.clear("call-b")
            assert await asyncio.wait_for(waiting, T) is False
            assert tb.cleared == 1

            waiting = asyncio.create_task(client.checkpoint("call-a", "mark-2"))
            await wait_for(lambda: "mark-2" in ta.checkpoints)
            ta.checkpoints["mark-2"].set_result(True)
            assert await asyncio.wait_for(waiting, T) is True

            await client.stop("call-a")
            assert ta.stopped == 1 and tb.stopped == 0

            # Refusals come back as CommandError with the server's reason.
            with pytest.raises(CommandError, match="unknown action 'dance'"):
                await client.command("call-a", "dance")
            with pytest.raises(CommandError, match="not a readable WAV"):
                await client.play_wav("call-a", b"RIFF nonsense")
            ta.fail_play = RuntimeError("route is not bidirectional")
            with pytest.raises(CommandError, match="not bidirectional"):
                await client.play("call-a", pcm, 8000)

            # A call nobody holds, or no longer holds: NATS's no-responders answer.
            with pytest.raises(CallNotFoundError):
                await client.clear("call-unknown")
            await bus_b.commands.remove("call-b")
            await bus_b.connection.nc.flush()  # the server has the UNSUB before we ask
            # Nobody answers any more: NATS's no-responders, or (a loaded machine, seen
            # once) the request's timeout. Either way the call was not reached.
            with pytest.raises((CallNotFoundError, BusUnavailableError)):
                await client.send_dtmf("call-b", "1")
            assert tb.dtmf == ["12#"]
    finally:
        await bus_a.aclose()
        await bus_b.aclose()


# -- outages ---------------------------------------------------------------------------------


@pytest.fixture
def outage_server(tmp_path: Path) -> Any:
    """A nats-server of this test's own, to stop and restart on the same port."""
    binary = find_binary("nats-server")
    if binary is None:
        pytest.skip("nats-server not found")
    server = NatsServer(binary, tmp_path)
    yield server
    server.stop()


def publish_timed(bus: Bus, call_id: str, start: int, n: int) -> tuple[int, float]:
    """Publish ``n`` events; how many were accepted and the slowest call (s)."""
    accepted, slowest = 0, 0.0
    for i in range(start, start + n):
        t0 = time.perf_counter()
        accepted += bus.events.publish(call_id, "tick", {"n": i})
        slowest = max(slowest, time.perf_counter() - t0)
    return accepted, slowest


async def test_nats_down_at_start(outage_server: NatsServer) -> None:
    s = settings(outage_server, backlog=500)
    bus = Bus(s)
    await bus.start()  # returns at once with no server at all
    try:
        accepted, slowest = publish_timed(bus, "c1", 0, 300)
        assert accepted == 300 and slowest < 0.5  # never waits on a connect
        target = Target()
        await bus.commands.add("c1", target)  # deferred until connected
        await asyncio.sleep(0.3)  # the client keeps retrying meanwhile
        assert bus.events.backlog == 300 and not bus.connection.connected

        outage_server.start()
        assert await bus.events.wait_sent(T)
        evs = await read_events(s, 300)
        assert [e.data["n"] for e in evs] == list(range(300))
        assert bus.events.stats()["dropped"] == 0
        await bus.connection.nc.flush()
        async with client_for(s) as client:
            await client.send_dtmf("c1", "7")
        assert target.dtmf == ["7"]
    finally:
        await bus.aclose()


async def test_nats_down_mid_stream_backlog_then_drops(outage_server: NatsServer) -> None:
    outage_server.start()
    s = settings(outage_server, backlog=100)
    bus = Bus(s)
    await bus.start()
    target = Target()
    try:
        assert await bus.connection.wait_connected(T)
        await bus.commands.add("c1", target)
        accepted, _ = publish_timed(bus, "c1", 0, 50)
        assert accepted == 50 and await bus.events.wait_sent(T)

        outage_server.stop(kill=True)
        await wait_for(lambda: not bus.connection.connected)
        # 150 more while down: the backlog keeps 100 in order, the last 50 are dropped.
        accepted, slowest = publish_timed(bus, "c1", 50, 150)
        assert accepted == 100 and slowest < 0.5
        assert bus.events.stats() == {"published": 50, "dropped": 50, "failed": 0, "backlog": 100}

        outage_server.start()  # same port, same JetStream store
        assert await bus.events.wait_sent(T)
        assert bus.events.stats()["published"] == 150
        evs = await read_events(s, 150)
        assert [e.data["n"] for e in evs] == list(range(150))  # nothing lost, no duplicates

        # Subscriptions came back with the connection: the call still answers commands.
        async with client_for(s) as client:
            await client.send_dtmf("c1", "9")
        assert target.dtmf == ["9"]
    finally:
        await bus.aclose()


# -- the command line ------------------------------------------------------------------------


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="streamserver")
    bus_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bus", *argv])


async def test_cli_events_and_play(
    bus_a: Bus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = bus_a.settings
    target = Target()
    await bus_a.commands.add("cli-call", target)
    bus_a.events.publish("cli-call", "stream.started", {"route": "/stream"}, stream_id="s1")
    bus_a.events.publish("cli-call", "dtmf", {"digit": "5"}, stream_id="s1")
    bus_a.events.publish("other-call", "dtmf", {"digit": "6"}, stream_id="s2")
    assert await bus_a.events.wait_sent(T)

    common = ["--url", s.url, "--prefix", s.prefix]
    args = cli_args("events", *common, "--call", "cli-call", "--count", "2", "--json")
    args = argparse.Namespace(**vars(args))
    # The stream name is not a flag: it comes from [bus] in the config.
    cfg = tmp_path / "bus.toml"
    cfg.write_text(f'[bus]\nstream = "{s.stream}"\n')
    args.config = str(cfg)
    assert await args.func(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["kind"], e["data"]) for e in lines] == [
        ("stream.started", {"route": "/stream"}),
        ("dtmf", {"digit": "5"}),
    ]

    wav = tmp_path / "hello.wav"
    pcm = (np.arange(4000) % 100 * 50).astype(np.int16)
    wav.write_bytes(encode_wav(pcm, 8000))
    args = cli_args("play", *common, "-c", str(cfg), "cli-call", str(wav))
    assert await args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seconds"] == 0.5 and out["host"] == "host-a"
    assert np.array_equal(target.played[0][0], pcm)

    args = cli_args("play", *common, "-c", str(cfg), "no-such-call", str(wav))
    assert await args.func(args) == 1
    assert "no live stream of call 'no-such-call'" in capsys.readouterr().err
