"""streamserver: a real-time telephony audio-stream server (Plivo Audio Streams)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
