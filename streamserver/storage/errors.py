"""The errors of :mod:`streamserver.storage`."""

from __future__ import annotations

from pathlib import Path

__all__ = ["StorageError", "UploadFailedError", "VerificationError"]


class StorageError(Exception):
    """Root of this package's errors."""


class VerificationError(StorageError):
    """The object stored under ``key`` is not what was sent (``expected`` vs ``got``)."""

    def __init__(self, key: str, what: str, expected: object, got: object) -> None:
        super().__init__(f"{key}: {what} is {got!r}, expected {expected!r}")
        self.key = key
        self.what = what
        self.expected = expected
        self.got = got


class UploadFailedError(StorageError):
    """Uploading the recording of ``sidecar`` failed ``attempts`` times in a row."""

    def __init__(self, sidecar: Path, attempts: int, cause: BaseException) -> None:
        super().__init__(f"upload of {sidecar} failed {attempts} times: {cause}")
        self.sidecar = sidecar
        self.attempts = attempts
        self.cause = cause
