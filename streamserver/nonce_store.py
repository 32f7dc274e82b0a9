"""Replay protection that survives a restart: the nonce cache kept in a small file.

Plivo's V3 signature covers the URL and a nonce, with no time in it (and Twilio's has
neither), so a captured signed upgrade stays valid for ever; only remembering its nonce
refuses it. :class:`PersistentNonceCache` is :class:`~streamserver.signature.NonceCache`
(pure, in memory) plus an append-only file, ``<dir>/nonces.log``, of ``expiry digest`` lines
(wall-clock expiry, SHA-256 of the nonce: fixed size, nothing the network chose): loaded at
start, appended to under an exclusive ``flock`` for each new nonce (one small write per
signed connection, none per frame), compacted to the live entries at start and whenever it
holds twice as many lines as live nonces. Workers of one host share the file, so a nonce
one of them saw is refused by the others after their next compaction, and by all after a
restart. The window is the cache's ``ttl_s`` (``[server] nonce_ttl_s``).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .signature import NonceCache

if TYPE_CHECKING:
    from .settings import ServerSettings

__all__ = ["PersistentNonceCache", "nonce_cache"]

log = logging.getLogger("streamserver.signature")

FILE_NAME = "nonces.log"
_MIN_COMPACT_LINES = 1000
_KEY_LEN = 32  # hex digits of the SHA-256 kept per nonce


class PersistentNonceCache(NonceCache):
    """A :class:`NonceCache` on the wall clock whose entries outlive the process.

    ``directory`` is created when missing; an unreadable or unwritable file is logged once
    and the cache keeps working in memory (refusing upgrades because a state file is broken
    would take every call down).
    """

    def __init__(self, directory: str | Path, ttl_s: float = 300.0, max_items: int = 100_000):
        super().__init__(ttl_s, max_items, clock=time.time)
        self.path = Path(directory) / FILE_NAME
        self._fd: int | None = None
        self._lines = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            self._compact()
        except OSError as exc:
            self._fail(exc)

    def seen(self, nonce: str) -> bool:
        """True if ``nonce`` was seen within the TTL, by this process or one before it."""
        key = hashlib.sha256(nonce.encode("utf-8", "surrogatepass")).hexdigest()[:_KEY_LEN]
        if super().seen(key):
            return True
        if self._fd is not None:
            try:
                self._append(f"{self.now() + self.ttl_s:.0f} {key}\n".encode())
            except OSError as exc:
                self._fail(exc)
        return False

    def close(self) -> None:
        """Close the file (the entries stay on disk for the next start)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- file ------------------------------------------------------------------------------

    def _append(self, line: bytes) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            os.write(self._fd, line)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lines += 1
        if self._lines > max(_MIN_COMPACT_LINES, 2 * len(self)):
            self._compact()

    def _compact(self) -> None:
        """Load every entry in the file (other workers' too), rewrite it with the live ones."""
        fd = self._fd
        assert fd is not None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            for raw in b"".join(chunks).splitlines():
                expires, _, key = raw.decode("ascii", "replace").partition(" ")
                if len(key) != _KEY_LEN:
                    continue  # a torn line (a crash mid-write): nothing to remember
                try:
                    self.remember(key, float(expires))
                except ValueError:
                    continue
            live = self.live()
            data = "".join(f"{exp:.0f} {key}\n" for key, exp in live).encode()
            os.ftruncate(fd, 0)  # in place: other workers' O_APPEND descriptors stay valid
            os.write(fd, data)
            self._lines = len(live)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _fail(self, exc: OSError) -> None:
        log.error(
            "nonce file %s: %s; replayed signatures are refused only until a restart",
            self.path,
            exc,
        )
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def nonce_cache(sv: ServerSettings) -> NonceCache:
    """The replay cache ``[server]`` asks for: on disk in ``nonce_dir``, else in memory."""
    if sv.nonce_dir:
        return PersistentNonceCache(sv.nonce_dir, sv.nonce_ttl_s)
    return NonceCache(sv.nonce_ttl_s)
