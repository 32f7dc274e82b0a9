"""Servers run as processes in tests: read their log until a line says they are ready,
then keep reading it (a full pipe would block the process) into the same list."""

from __future__ import annotations

import asyncio
import re


async def read_until(
    proc: asyncio.subprocess.Process, pattern: str, lines: list[str], timeout: float
) -> str:
    """Read ``proc``'s stderr into ``lines`` until a line matches ``pattern``; its first
    group. ``timeout`` bounds each line (a hang), and an exit before it fails the test."""
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), timeout)).decode()
        assert line, "exited before the expected line:\n" + "".join(lines)
        lines.append(line)
        if m := re.search(pattern, line):
            return m.group(1)


def keep_reading(proc: asyncio.subprocess.Process, lines: list[str]) -> asyncio.Task[None]:
    """Read the rest of ``proc``'s stderr into ``lines``, in the background (cancel it)."""

    async def pump() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            lines.append(line.decode())

    return asyncio.create_task(pump())


async def stop(proc: asyncio.subprocess.Process, timeout: float) -> None:
    """SIGTERM ``proc`` if it still runs and wait for it; SIGKILL after ``timeout``."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
