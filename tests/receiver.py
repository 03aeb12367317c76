"""A real HTTP server on loopback that receives webhooks: it records every request, answers
per path as a test tells it (a status, a redirect, or accepting and never answering), and
verifies signatures both with the standardwebhooks library and with a plain HMAC-SHA256."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import standardwebhooks
import uvicorn


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    hang: bool = False


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, list[Answer]] = {}
        self.release = asyncio.Event()
        self.arrived = asyncio.Condition()
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *answers: Answer) -> None:
        """Answer `path` with these in turn; the last one repeats."""
        self.answers[path] = list(answers)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender died mid-request (and got no answer: it will try again)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(scope["path"], headers, body))
        async with self.arrived:
            self.arrived.notify_all()
        queue = self.answers.get(scope["path"]) or [Answer()]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer.hang:
            await self.release.wait()
            return
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [(b"content-type", b"text/plain"), *answer.headers],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})


def verify(request: Received, secret: str) -> dict[str, Any]:
    """Both signatures of a delivery checked independently; returns the parsed body."""
    # Plain HMAC-SHA256 over the raw body, keyed with the whole secret string.
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-astrocal-signature"], expected)
    # Standard Webhooks by hand: "{id}.{timestamp}.{body}" keyed with the decoded secret.
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
    mac = base64.b64encode(hmac.new(key, signed + request.body, hashlib.sha256).digest())
    assert request.headers["webhook-signature"] == "v1," + mac.decode()
    # And the library a consumer would use. Its verify() also checks the timestamp is within
    # five minutes of the real clock; attempts made with a later `now` are checked by sign().
    library = standardwebhooks.Webhook(secret)
    timestamp = int(request.headers["webhook-timestamp"])
    if abs(timestamp - datetime.now(UTC).timestamp()) < 240:
        parsed: dict[str, Any] = library.verify(request.body, request.headers)
    else:
        at = datetime.fromtimestamp(timestamp, UTC)
        assert (
            library.sign(request.headers["webhook-id"], at, request.body.decode())
            == (request.headers["webhook-signature"])
        )
        parsed = json.loads(request.body)
    assert parsed["id"] == request.headers["webhook-id"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Astrocal-Webhooks/1"
    assert request.headers["x-astrocal-event"] == parsed["event"]
    assert request.headers["x-astrocal-delivery"].startswith("whd_")
    return parsed


@pytest.fixture(scope="session")
async def receiver_server() -> AsyncIterator[Receiver]:
    async with serving(Receiver()) as receiver:
        yield receiver


@pytest.fixture
async def receiver(receiver_server: Receiver) -> AsyncIterator[Receiver]:
    """The session's receiver, with this test's records and answers only; requests left
    hanging are let go when the test ends."""
    receiver_server.received.clear()
    receiver_server.answers.clear()
    yield receiver_server
    receiver_server.release.set()
    receiver_server.release = asyncio.Event()


def self_signed(directory: Any, name: str) -> tuple[str, str, str]:
    """A CA and a leaf certificate for `name` signed by it: (ca file, cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Astrocal test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(files[0]), str(files[1]), str(files[2])


@contextlib.asynccontextmanager
async def serving(
    receiver: Receiver, *, certfile: str | None = None, keyfile: str | None = None
) -> AsyncIterator[Receiver]:
    """Run `receiver` on a loopback port (TLS when given a certificate) until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    receiver.port = sock.getsockname()[1]
    config = uvicorn.Config(
        receiver,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    loop = asyncio.create_task(server.main_loop())
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.should_exit = True
        await loop
        await server.shutdown(sockets=[sock])
        sock.close()
