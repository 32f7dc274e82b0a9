"""A local Plivo: the Voice REST API, simulated calls that really stream audio, and the
Plivo-side stream client.

- :class:`Emulator` runs the REST API (:func:`create_app`) and the call simulator
  (:class:`Simulator`) on a local port; ``streamserver emulate`` is its command line.
- :class:`PlivoStreamClient` plays Plivo's part of one Audio Stream (also behind
  ``streamserver replay``).

The emulated account's credentials default to :data:`DEFAULT_AUTH_ID` /
:data:`DEFAULT_AUTH_TOKEN`: local-only values, good for nothing but this emulator.
``PLIVO_AUTH_ID``/``PLIVO_AUTH_TOKEN`` or the ``[emulator]`` config table override them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import create_app
    from .api.common import ApiError
    from .server import AsgiServer, Emulator
    from .settings import (
        DEFAULT_AUTH_ID,
        DEFAULT_AUTH_TOKEN,
        SAMPLES_DIR,
        EmulatorConfigError,
        EmulatorSettings,
        load_emulator_settings,
    )
    from .simulator import HangupCause, Simulator
    from .store import Store
    from .streamclient import PlivoStreamClient, StreamClientOptions, StreamReport

# Exports load on first use, so importing the stream client alone (replay, tests) does not
# pull in the HTTP server stack.
_EXPORTS = {
    "DEFAULT_AUTH_ID": ".settings",
    "DEFAULT_AUTH_TOKEN": ".settings",
    "SAMPLES_DIR": ".settings",
    "ApiError": ".api.common",
    "AsgiServer": ".server",
    "Emulator": ".server",
    "EmulatorConfigError": ".settings",
    "EmulatorSettings": ".settings",
    "HangupCause": ".simulator",
    "PlivoStreamClient": ".streamclient",
    "Simulator": ".simulator",
    "Store": ".store",
    "StreamClientOptions": ".streamclient",
    "StreamReport": ".streamclient",
    "create_app": ".api",
    "load_emulator_settings": ".settings",
}

__all__ = [
    "DEFAULT_AUTH_ID",
    "DEFAULT_AUTH_TOKEN",
    "SAMPLES_DIR",
    "ApiError",
    "AsgiServer",
    "Emulator",
    "EmulatorConfigError",
    "EmulatorSettings",
    "HangupCause",
    "PlivoStreamClient",
    "Simulator",
    "Store",
    "StreamClientOptions",
    "StreamReport",
    "create_app",
    "load_emulator_settings",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
