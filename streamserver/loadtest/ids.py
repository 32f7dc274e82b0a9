"""Plivo-shaped identifiers for the simulated calls (the load tester's own, so that it does
not depend on the emulator)."""

from __future__ import annotations

import secrets
import string

__all__ = ["random_account_id"]

_ID_ALPHABET = string.ascii_uppercase + string.digits


def random_account_id() -> str:
    """An auth ID as Plivo sends it in ``start.accountId``: ``MA`` and 18 letters/digits."""
    return "MA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(18))
