"""Finished recordings to S3-compatible storage: upload, verify, then free the spool.

The recorder keeps writing to local disk first (its ≤ 1 s kill -9 promise stands); this
package moves what it finished into a bucket. A recording is *finished* when its JSON sidecar
(``{record_dir}/{call_id}/{stream_id}.json``) has a ``stop_reason``: the recorder writes that
only after closing the audio files. Each one goes up as::

    s3://{bucket}/{prefix}/{call_id}/{stream_id}.inbound.wav   (each audio file, then)
    s3://{bucket}/{prefix}/{call_id}/{stream_id}.json          (the sidecar, last)

Audio above ``multipart_threshold`` (8 MiB) goes up in parts. Every object is verified
after the upload (its size, and its ETag against the MD5 of what was sent — per part and
for the whole); the local copy is deleted only then, audio first and the sidecar last, so a
crash at any point leaves a sidecar behind and the recording is taken up again.

:class:`RecordingUploader` runs on its own thread with its own event loop: hashing, signing
and file reads never touch the media loop. :meth:`~RecordingUploader.submit` is a
non-blocking, thread-safe call into a bounded queue; the spool directory itself is the
durable queue — a re-scan at start, and every ``rescan_interval_s``, picks up whatever a
crash, a full queue or exhausted retries left behind. A recording whose process died
before it finished (no ``stop_reason``) is uploaded as *recovered* once none of its files
changed for ``orphan_after_s``.

Modules, each importing only ones listed before it: ``settings`` (the ``[storage]`` table),
``errors``, ``spool`` (which recordings are due, freeing them after), ``s3`` (the client and
the verified puts) and ``uploader`` (:class:`RecordingUploader`).

Credentials and region come from botocore's usual chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_REGION``...).
Needs the ``s3`` extra (aiobotocore).

Exceptions::

    StorageError
    ├── VerificationError   the stored object does not match what was sent
    └── UploadFailedError   all retries failed (the recording stays in the spool)
"""

from __future__ import annotations

from .errors import StorageError, UploadFailedError, VerificationError
from .s3 import StoredObject
from .settings import StorageSettings, parse_url
from .spool import find_recordings
from .uploader import RecordingUploader, UploadResult

__all__ = [
    "RecordingUploader",
    "StorageError",
    "StorageSettings",
    "StoredObject",
    "UploadFailedError",
    "UploadResult",
    "VerificationError",
    "find_recordings",
    "parse_url",
]
