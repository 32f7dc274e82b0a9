"""Answering-machine detection on answered calls (``machine_detection`` on the Call API).

Plivo detects in the background while the answer XML runs, then requests
``machine_detection_url`` with ``Machine=true`` (and, with ``machine_detection=hangup``,
hangs the call up). The emulator knows who answered (the ``machine`` outcome,
:mod:`.outcomes`), so its verdict is exact; it comes when the detection window
(``machine_detection_time``, 2000-10000 ms, default 5000) ends, as ``Machine=true`` or
``Machine=false``, never earlier, so a test can count on the order.
"""

from __future__ import annotations

import asyncio
import logging

from .callbacks import Webhooks
from .callstate import MACHINE_DETECTED, CallRuntime

__all__ = ["MachineDetection"]

log = logging.getLogger("streamserver.emulator")


class MachineDetection:
    """Gives each answered call with ``machine_detection`` its verdict."""

    def __init__(self, hooks: Webhooks) -> None:
        self._hooks = hooks

    def start(self, rt: CallRuntime) -> None:
        """Schedule the verdict of a call just answered (nothing if detection is off)."""
        call = rt.call
        if not call.machine_detection:
            return
        delay = call.machine_detection_time_ms / 1000.0
        rt.timers.append(asyncio.get_running_loop().call_later(delay, self._verdict, rt))

    def _verdict(self, rt: CallRuntime) -> None:
        call = rt.call
        if call.ended or rt.end is not None:
            return
        machine = rt.outcome == "machine"
        rt.machine = machine
        hang_up = machine and call.machine_detection == "hangup"
        log.info("emulator: call %s answered by a %s%s", call.call_uuid,
                 "machine" if machine else "person", "; hanging up" if hang_up else "")  # fmt: skip
        params = self._hooks.call_params(call, "MachineDetection")
        params.update(
            Machine="true" if machine else "false",
            IfMachine="hangup" if call.machine_detection == "hangup" else "continue",
        )
        self._hooks.callback(
            call.machine_detection_url, call.machine_detection_method, params, "machine detection"
        )
        if hang_up:
            rt.request_end(MACHINE_DETECTED)
